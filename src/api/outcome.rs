//! What an answer of the API means (tc-api.md section 4): one closed enum and
//! one function that classifies by message first, then by status.

use std::time::{Duration, SystemTime};

pub use crate::names::ErrorClass;

/// Every kind of answer the daemon tells apart. Delivery decides what each
/// means in one exhaustive `match` (`deliver::policy`).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx: created, updated, or the data asked for.
    Success,
    /// 400 "... already exists": the indicator is there, which is what we wanted.
    Duplicate { message: String },
    /// "Signature data did not match expected result": wrong key, access id or base path.
    SignatureMismatch,
    /// "Timestamp out of acceptable time range": our clock is off. Carries the
    /// server's `Date` so the offset can be corrected.
    TimestampOutOfRange { server_date: Option<SystemTime> },
    /// "Access Denied": no access to the owner, or a bad Authorization value.
    AccessDenied { message: String },
    /// "The requested owner was not found" (403).
    OwnerNotFound,
    /// 401 "Unauthorized": an expired token.
    Unauthorized,
    /// 400: the API refused the data; its message says why.
    Validation { message: String },
    /// 404 "The requested resource was not found".
    NotFound,
    /// 429, or 503 with Retry-After.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx: the server failed.
    ServerError { status: u16, message: String },
    /// No usable answer: timeout, connection refused or reset, DNS, TLS.
    Transport { message: String },
    /// Anything else: the status and the first 512 bytes of the body.
    Unexpected { status: u16, body: String },
    /// 503 "Batch job api is not available...": the instance has the batch
    /// API (or document storage) turned off.
    BatchUnavailable { message: String },
    /// 400 "File size greater than allowable limit of N": a batch upload
    /// larger than the instance takes; `limit` is N (0 when not given).
    UploadTooLarge { limit: u64 },
    /// "Security Label <name> does not exist": the instance has no such
    /// label (names compare exactly). Not documented; the simulator's text.
    UnknownSecurityLabel { label: String },
}

impl Outcome {
    /// A call that succeeded (or, for an attribute found already there,
    /// needs no sending).
    pub fn success() -> Self {
        Outcome::Success
    }

    /// The server's clock, when a timestamp refusal carried its `Date`.
    pub fn server_date(&self) -> Option<SystemTime> {
        match self {
            Outcome::TimestampOutOfRange { server_date } => *server_date,
            _ => None,
        }
    }

    /// Its class, stored as a job's `last_error_class` and used by
    /// `tc-ingest retry --class`.
    pub fn class(&self) -> ErrorClass {
        match self {
            Outcome::Success => ErrorClass::Success,
            Outcome::Duplicate { .. } => ErrorClass::Duplicate,
            Outcome::SignatureMismatch => ErrorClass::Signature,
            Outcome::TimestampOutOfRange { .. } => ErrorClass::Timestamp,
            Outcome::AccessDenied { .. } => ErrorClass::AccessDenied,
            Outcome::OwnerNotFound => ErrorClass::OwnerNotFound,
            Outcome::Unauthorized => ErrorClass::Unauthorized,
            Outcome::Validation { .. } => ErrorClass::Validation,
            Outcome::NotFound => ErrorClass::NotFound,
            Outcome::RateLimited { .. } => ErrorClass::RateLimited,
            Outcome::ServerError { .. } => ErrorClass::ServerError,
            Outcome::Transport { .. } => ErrorClass::Transport,
            Outcome::Unexpected { .. } => ErrorClass::Unexpected,
            Outcome::BatchUnavailable { .. } => ErrorClass::BatchUnavailable,
            Outcome::UploadTooLarge { .. } => ErrorClass::UploadTooLarge,
            Outcome::UnknownSecurityLabel { .. } => ErrorClass::SecurityLabel,
        }
    }

    /// A message for logs, the queue and `ping`.
    pub fn message(&self) -> String {
        match self {
            Outcome::Success => "success".into(),
            Outcome::Duplicate { message }
            | Outcome::AccessDenied { message }
            | Outcome::Validation { message }
            | Outcome::BatchUnavailable { message }
            | Outcome::Transport { message } => message.clone(),
            Outcome::UploadTooLarge { limit } => {
                format!("File size greater than allowable limit of {limit}")
            }
            Outcome::SignatureMismatch => "Signature data did not match expected result".into(),
            Outcome::TimestampOutOfRange { .. } => "Timestamp out of acceptable time range".into(),
            Outcome::OwnerNotFound => "The requested owner was not found".into(),
            Outcome::Unauthorized => "Unauthorized".into(),
            Outcome::NotFound => "The requested resource was not found".into(),
            Outcome::RateLimited { retry_after } => match retry_after {
                Some(d) => format!("rate limited, retry after {}s", d.as_secs()),
                None => "rate limited".into(),
            },
            Outcome::ServerError { status, message } => format!("HTTP {status}: {message}"),
            Outcome::UnknownSecurityLabel { label } => {
                format!("Security Label {label} does not exist")
            }
            Outcome::Unexpected { status, body } => format!("HTTP {status}: {body}"),
        }
    }

    /// What an operator should check, for `ping` and the pause log lines.
    pub fn advice(&self) -> Option<&'static str> {
        Some(match self {
            Outcome::SignatureMismatch => {
                "check the secret key (TC_API_SECRET_KEY, api.secret_key_file or the systemd credential), \
                 the access id (api.access_id), and whether api.base_url needs the /api path \
                 (sandbox, dedicated and on-premise instances use https://<host>/api)"
            }
            Outcome::TimestampOutOfRange { .. } => {
                "check the system clock (NTP): it must be within 5 minutes of the server's"
            }
            Outcome::AccessDenied { .. } => {
                "check that the API user may access this owner, and the access id (api.access_id)"
            }
            Outcome::OwnerNotFound => "check the owner name (api.owner or the feed rule's owner)",
            Outcome::Unauthorized => {
                "the credentials were refused (401). With an API token: it expired or is not \
                 valid: issue a new token in ThreatConnect, put it where the token comes from \
                 (api.token_file, the systemd credential tc-api-token or TC_TOKEN; `tc-ingest \
                 check-config` shows which), then reload (`systemctl reload tc-ingest`). With an \
                 access id and secret key: check both, and the API user's state in ThreatConnect"
            }
            Outcome::BatchUnavailable { .. } => {
                "the instance's batch API is off (batchJobEnabled, document storage): \
                 delivery goes per indicator; set delivery.mode = \"v2\" or \"v3\" to stop trying it"
            }
            Outcome::Transport { .. } => {
                "check api.base_url, the network path to the server, the proxy if one is named \
                 (api.proxy, TC_PROXY_HOST, HTTPS_PROXY; NO_PROXY), and TLS (api.ca_file for a private CA)"
            }
            _ => return None,
        })
    }
}

/// The label an error message says the instance lacks ("Security Label
/// <name> does not exist"): an API answer's, or a batch item error's.
pub fn unknown_security_label(message: &str) -> Option<String> {
    let rest = &message[message.find("Security Label ")? + "Security Label ".len()..];
    let name = rest
        .strip_suffix(" does not exist")
        .or_else(|| rest.find(" does not exist").map(|i| &rest[..i]))?;
    let name = name.trim().trim_matches(['\'', '"']);
    (!name.is_empty()).then(|| name.to_string())
}

/// Classifies an answer. `retry_after` and `date` are the raw header values.
pub fn classify(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    retry_after: Option<&str>,
    date: Option<&str>,
) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Success;
    }
    let message = failure_message(content_type, body);
    let m = message.as_str();
    if m.contains("Signature data did not match") {
        return Outcome::SignatureMismatch;
    }
    if m.contains("Timestamp out of acceptable time range") || m.starts_with("Invalid timestamp") {
        return Outcome::TimestampOutOfRange {
            server_date: date.and_then(|d| httpdate::parse_http_date(d).ok()),
        };
    }
    if m.contains("already exists") && (400..500).contains(&status) {
        return Outcome::Duplicate { message };
    }
    if m.starts_with("Access Denied") {
        return Outcome::AccessDenied { message };
    }
    if m.contains("requested owner was not found") {
        return Outcome::OwnerNotFound;
    }
    if m == "Unauthorized" && status == 401 {
        return Outcome::Unauthorized;
    }
    if m.contains("requested resource was not found") {
        return Outcome::NotFound;
    }
    if let Some(label) = unknown_security_label(m) {
        return Outcome::UnknownSecurityLabel { label };
    }
    if m.starts_with("Batch job api is not available") {
        return Outcome::BatchUnavailable { message };
    }
    if let Some(rest) = m.strip_prefix("File size greater than allowable limit") {
        let digits: String = rest
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        return Outcome::UploadTooLarge {
            limit: digits.parse().unwrap_or(0),
        };
    }
    let retry_after = retry_after.and_then(parse_retry_after);
    match status {
        429 => Outcome::RateLimited { retry_after },
        503 if retry_after.is_some() => Outcome::RateLimited { retry_after },
        400 | 422 => Outcome::Validation { message },
        401 => Outcome::Unauthorized,
        403 => Outcome::AccessDenied { message },
        404 => Outcome::NotFound,
        500..=599 => Outcome::ServerError { status, message },
        _ => Outcome::Unexpected {
            status,
            body: truncate(&String::from_utf8_lossy(body), 512),
        },
    }
}

/// The failure text: `message` (or `description`) of a JSON body, else the
/// body as text. Plain-text bodies are common on 500s and behind proxies.
fn failure_message(content_type: Option<&str>, body: &[u8]) -> String {
    let looks_json = content_type.is_some_and(|c| c.contains("json"))
        || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if looks_json && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "description", "error"] {
            if let Some(s) = v.get(key).and_then(|m| m.as_str()) {
                return truncate(s, 512);
            }
        }
    }
    truncate(String::from_utf8_lossy(body).trim(), 512)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(msg: &str) -> Vec<u8> {
        serde_json::json!({"status": "Failure", "message": msg})
            .to_string()
            .into_bytes()
    }

    #[track_caller]
    fn check(status: u16, body: &[u8], class: &str) {
        let o = classify(status, Some("application/json"), body, None, None);
        assert_eq!(
            o.class().as_str(),
            class,
            "{status} {:?} -> {o:?}",
            String::from_utf8_lossy(body)
        );
    }

    #[test]
    fn batch_answers_are_told_apart() {
        let body = failure(
            "Batch job api is not available. Ensure that batchJobEnabled is true and document storage is enabled",
        );
        let o = classify(503, Some("application/json"), &body, None, None);
        assert!(matches!(o, Outcome::BatchUnavailable { .. }), "{o:?}");
        let body = br#"{"status":"Invalid","description":"File size greater than allowable limit of 2000000"}"#;
        let o = classify(400, Some("application/json"), body, None, None);
        assert_eq!(o, Outcome::UploadTooLarge { limit: 2_000_000 });
        // v3's error body carries the message the same way.
        let body =
            br#"{"errCode":"0x1001","message":"Please enter a valid Host","status":"Error"}"#;
        let o = classify(400, Some("application/json"), body, None, None);
        assert_eq!(o.class(), ErrorClass::Validation);
    }

    #[test]
    fn classifies_by_message_before_status() {
        check(201, b"{}", "success");
        for status in [401, 403] {
            check(
                status,
                &failure("Signature data did not match expected result"),
                "signature",
            );
            check(
                status,
                &failure("Timestamp out of acceptable time range"),
                "timestamp",
            );
            check(status, &failure("Access Denied"), "access_denied");
        }
        check(401, &failure("Invalid timestamp"), "timestamp");
        check(
            403,
            &failure("The requested owner was not found"),
            "owner_not_found",
        );
        check(401, &failure("Unauthorized"), "unauthorized");
        check(
            404,
            &failure("The requested resource was not found"),
            "not_found",
        );
        check(
            400,
            &failure("The request was not properly formed"),
            "validation",
        );
        check(400, &failure("Please enter a valid Address"), "validation");
        check(
            400,
            &failure("The MD5 for this File is invalid, a File with this MD5 already exists"),
            "duplicate",
        );
        check(500, &failure("An unknown error occurred"), "server_error");
        check(
            503,
            &failure("API access has not been licensed for this system"),
            "server_error",
        );
        check(429, b"", "rate_limited");
        check(302, b"moved", "unexpected");
    }

    #[test]
    fn plain_text_bodies_are_read_as_text() {
        let o = classify(
            500,
            Some("text/plain"),
            b"Internal Server Error",
            None,
            None,
        );
        assert_eq!(
            o,
            Outcome::ServerError {
                status: 500,
                message: "Internal Server Error".into()
            }
        );
        let o = classify(
            401,
            Some("text/html"),
            b"Signature data did not match expected result",
            None,
            None,
        );
        assert_eq!(o, Outcome::SignatureMismatch);
        let big = vec![b'x'; 2000];
        match classify(418, None, &big, None, None) {
            Outcome::Unexpected { body, .. } => assert_eq!(body.len(), 512),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn retry_after_in_seconds_or_http_date() {
        let o = classify(503, None, b"busy", Some("7"), None);
        assert_eq!(
            o,
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        match classify(429, None, b"", Some(&later), None) {
            Outcome::RateLimited {
                retry_after: Some(d),
            } => assert!((28..=30).contains(&d.as_secs()), "{d:?}"),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn timestamp_answer_carries_server_date() {
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        match classify(
            401,
            None,
            &failure("Timestamp out of acceptable time range"),
            None,
            Some(date),
        ) {
            Outcome::TimestampOutOfRange {
                server_date: Some(t),
            } => {
                assert_eq!(httpdate::fmt_http_date(t), date)
            }
            o => panic!("{o:?}"),
        }
    }
}
