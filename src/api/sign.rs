//! ThreatConnect's `TC` HMAC signature (tc-api.md section 2) and the clock
//! whose offset delivery corrects when the server says ours is off.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `base64(HMAC-SHA256(secret, "<path_and_query>:<METHOD>:<timestamp>"))`.
pub fn signature(secret: &[u8], path_and_query: &str, method: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(path_and_query.as_bytes());
    mac.update(b":");
    mac.update(method.as_bytes());
    mac.update(b":");
    mac.update(timestamp.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value.
pub fn authorization(access_id: &str, signature: &str) -> String {
    format!("TC {access_id}:{signature}")
}

/// The `Authorization` header value of token auth (no signature, no
/// `Timestamp`).
pub fn token_authorization(token: &str) -> String {
    format!("TC-Token {token}")
}

/// Wall-clock seconds plus an offset that delivery sets from the server's
/// `Date` header when the API answers "Timestamp out of acceptable time range".
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> i64 {
        unix_now() + self.offset()
    }

    pub fn offset(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    pub fn set_offset(&self, secs: i64) {
        self.offset_secs.store(secs, Ordering::Relaxed);
    }

    /// Sets the offset so that `now()` agrees with the server's clock, given
    /// the server's `Date`. Returns the new offset.
    pub fn correct_to(&self, server_time: SystemTime) -> i64 {
        let server = server_time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let offset = server - unix_now();
        self.set_offset(offset);
        offset
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(signed: &str, expected: &str) {
        let (rest, ts) = signed.rsplit_once(':').unwrap();
        let (path, method) = rest.rsplit_once(':').unwrap();
        assert_eq!(
            signature(b"test-secret", path, method, ts.parse().unwrap()),
            expected,
            "{signed}"
        );
    }

    #[test]
    fn test_vectors_of_tc_api() {
        check(
            "/api/v2/indicators/hosts?owner=Common%20Community:POST:1513703787",
            "8kfDeJmRulvujGB47GYgSsxvUkGzaB8NgTli1ymG+5w=",
        );
        check(
            "/api/v2/indicators/hosts?owner=Common+Community:POST:1513703787",
            "eFkpslUot67isLv2veNGc8bgKbGcZSCe8dDhjuxcZEg=",
        );
        check(
            "/v2/indicators/hosts/example.com?Owner=Common%20Community:GET:1513703787",
            "nKJ+SNmzsQHhGms69MslCIjfWtvSUMtMQ4d9xjLF10Y=",
        );
        check(
            "/v2/owners:GET:1513703787",
            "vU+bE4PnYQVg+2igCirpuQNRsFe0mCHnOH9zkyTf1Qo=",
        );
    }

    #[test]
    fn clock_offset_applies_to_now() {
        let clock = Clock::default();
        let before = clock.now();
        let offset = clock.correct_to(SystemTime::now() + std::time::Duration::from_secs(600));
        assert!((599..=601).contains(&offset), "{offset}");
        assert!(clock.now() - before >= 599);
    }
}
