//! The HTTP client of one source: basic auth or a header from a file, a
//! client certificate, a CA, connect and read timeouts, at most five
//! redirects and never from https to http; answers read with a size cap
//! while they stream. Every failure becomes a [`FetchError`] with a class.

use std::io::Write;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use sha2::{Digest, Sha256};

use crate::config::{Secret, SourceConfig};

crate::names::named_enum! {
    /// Why a fetch failed (`sources`, `status`, metrics).
    pub enum FetchClass ("fetch error class") {
        /// 401 or 403: the source's credentials.
        Credentials => "credentials",
        /// 429, or 503 with Retry-After.
        Throttled => "throttled",
        ServerError => "server_error",
        /// Another 4xx (a wrong URL or collection, 406, ...).
        ClientError => "client_error",
        /// Connect, TLS, timeout, reset, a refused redirect.
        Transport => "transport",
        /// An answer over `max_bytes`.
        TooLarge => "too_large",
        /// An answer that is not what the protocol says (TAXII, MISP).
        Invalid => "invalid",
        /// The source's own files (password, header, certificates).
        Config => "config",
        /// Writing into the watched directory.
        Disk => "disk",
    }
}

/// A failed fetch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub class: FetchClass,
    pub message: String,
    /// What the server asked for (429/503 `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl FetchError {
    pub fn new(class: FetchClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;
/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error body a message quotes.
const QUOTED: usize = 200;

/// One source's client. Rebuilt when its config changes.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    headers: HeaderMap,
    max_bytes: u64,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

fn read_file(what: &str, path: &std::path::Path) -> Result<Vec<u8>, FetchError> {
    std::fs::read(path).map_err(|e| {
        FetchError::new(
            FetchClass::Config,
            format!("cannot read {what} {}: {e}", path.display()),
        )
    })
}

/// A secret file's text, without its trailing newline.
fn read_secret(what: &str, path: &std::path::Path) -> Result<Secret, FetchError> {
    let bytes = read_file(what, path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        FetchError::new(
            FetchClass::Config,
            format!("{what} {} is not UTF-8", path.display()),
        )
    })?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

impl Fetcher {
    /// # Errors
    /// A file the source names cannot be read or parsed (class `config`).
    pub fn new(cfg: &SourceConfig) -> Result<Self, FetchError> {
        // reqwest is built without a crypto provider (as for the API).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = |e: reqwest::Error| FetchError::new(FetchClass::Config, e.to_string());
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(cfg.read_timeout)
            .user_agent(concat!("tc-ingest/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by `get`, which decides what each
            // hop may carry.
            .redirect(reqwest::redirect::Policy::none());
        builder = match &cfg.proxy {
            Some(p) => builder.proxy(reqwest::Proxy::all(p).map_err(config)?),
            None => builder.no_proxy(),
        };
        if let Some(ca) = &cfg.ca_file {
            let pem = read_file("ca_file", ca)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(config)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&cfg.client_cert_file, &cfg.client_key_file) {
            let mut pem = read_file("client_cert_file", cert)?;
            pem.push(b'\n');
            pem.extend(read_file("client_key_file", key)?);
            builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(config)?);
        }
        let mut headers = HeaderMap::new();
        if let (Some(user), Some(file)) = (&cfg.username, &cfg.password_file) {
            let password = read_secret("password_file", file)?;
            let token = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{user}:{}", password.expose()),
            );
            let mut v = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                FetchError::new(FetchClass::Config, "the password holds a control character")
            })?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        if let Some(file) = &cfg.header_file {
            let line = read_secret("header_file", file)?;
            let bad = || {
                FetchError::new(
                    FetchClass::Config,
                    format!(
                        "header_file {} must hold one `Name: value` line",
                        file.display()
                    ),
                )
            };
            let (name, value) = line.expose().split_once(':').ok_or_else(bad)?;
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
            let mut value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Self {
            http: builder.build().map_err(config)?,
            headers,
            max_bytes: cfg.max_bytes,
        })
    }

    /// Sends a GET; a 2xx or 304 answer comes back for its body to be
    /// read, any other status as its [`FetchError`].
    ///
    /// # Errors
    /// Transport failures and non-success statuses.
    pub async fn get(
        &self,
        url: &str,
        headers: HeaderMap,
    ) -> Result<reqwest::Response, FetchError> {
        let origin = url::Url::parse(url)
            .map_err(|e| FetchError::new(FetchClass::Config, format!("{url:?}: {e}")))?;
        let mut current = origin.clone();
        let mut hops = 0;
        let resp = loop {
            // The source's credentials and header go to its own origin
            // only, never to where a redirect points elsewhere.
            let mut req = self.http.get(current.clone()).headers(headers.clone());
            if current.origin() == origin.origin() {
                req = req.headers(self.headers.clone());
            }
            let resp = req.send().await.map_err(|e| transport(&e))?;
            if !resp.status().is_redirection() || resp.status() == reqwest::StatusCode::NOT_MODIFIED
            {
                break resp;
            }
            hops += 1;
            current = redirect_target(&origin, &current, &resp, hops)?;
        };
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let class = match status.as_u16() {
            401 | 403 => FetchClass::Credentials,
            429 => FetchClass::Throttled,
            503 if retry_after.is_some() => FetchClass::Throttled,
            500..=599 => FetchClass::ServerError,
            _ => FetchClass::ClientError,
        };
        let body = error_body(resp).await;
        Err(FetchError {
            class,
            message: format!("HTTP {status} from {url}{}", quote(&body)),
            retry_after,
        })
    }

    /// The whole body, up to `max_bytes`.
    ///
    /// # Errors
    /// Over the cap, or the transfer failed.
    pub async fn body(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(&e))? {
            out.extend_from_slice(&chunk);
            self.check_size(out.len() as u64)?;
        }
        Ok(out)
    }

    /// Streams the body into `file` up to `max_bytes`; its length and
    /// sha256 (hex).
    ///
    /// # Errors
    /// Over the cap, the transfer failed, or the write did.
    pub async fn body_to(
        &self,
        mut resp: reqwest::Response,
        file: &mut std::fs::File,
    ) -> Result<(u64, String), FetchError> {
        let mut hash = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(&e))? {
            n += chunk.len() as u64;
            self.check_size(n)?;
            hash.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| FetchError::new(FetchClass::Disk, format!("writing: {e}")))?;
        }
        Ok((n, hex::encode(hash.finalize())))
    }

    fn check_size(&self, n: u64) -> Result<(), FetchError> {
        if n > self.max_bytes {
            return Err(FetchError::new(
                FetchClass::TooLarge,
                format!(
                    "the answer is over max_bytes ({} bytes): stopped reading",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// Where a redirect answer points, if it may be followed: at most
/// [`MAX_REDIRECTS`] hops, http or https only, never from https to http,
/// and plain http only between loopback addresses unless the source itself
/// is plain http elsewhere (the insecure switch allowed it).
fn redirect_target(
    origin: &url::Url,
    current: &url::Url,
    resp: &reqwest::Response,
    hops: usize,
) -> Result<url::Url, FetchError> {
    let refused = |why: String| FetchError::new(FetchClass::Transport, why);
    if hops > MAX_REDIRECTS {
        return Err(refused(format!(
            "more than {MAX_REDIRECTS} redirects from {origin}"
        )));
    }
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            refused(format!(
                "HTTP {} from {current} without a Location",
                resp.status()
            ))
        })?;
    let next = current
        .join(location)
        .map_err(|e| refused(format!("a redirect to {location:?}: {e}")))?;
    let loopback = |u: &url::Url| match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match next.scheme() {
        "https" => Ok(next),
        "http" if current.scheme() == "https" || origin.scheme() == "https" => Err(refused(
            format!("a redirect from https to http is refused ({next})"),
        )),
        "http" if loopback(&next) || !loopback(origin) => Ok(next),
        _ => Err(refused(format!("a redirect to {next} is refused"))),
    }
}

/// The start of an error answer's body (at most 64 KiB are read: the
/// message quotes a few words of it).
async fn error_body(mut resp: reqwest::Response) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < 64 << 10 {
        match resp.chunk().await {
            Ok(Some(c)) => out.extend_from_slice(&c),
            _ => break,
        }
    }
    out
}

/// A transport failure, with its causes (reqwest's own text is terse).
fn transport(e: &reqwest::Error) -> FetchError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    FetchError::new(FetchClass::Transport, message)
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .ok()
        .or_else(|| {
            httpdate::parse_http_date(v).ok().map(|t| {
                t.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
            })
        })
}

/// `: <the start of the body>` for a message: a TAXII error's title and
/// description, or the first characters of text (an HTML page's tags
/// left out).
fn quote(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct TaxiiError {
        title: String,
        description: Option<String>,
    }
    let text = match serde_json::from_slice::<TaxiiError>(body) {
        Ok(e) => match e.description {
            Some(d) => format!("{}: {d}", e.title),
            None => e.title,
        },
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
    };
    // Markup, control characters and length out: it goes into a log line
    // and the queue.
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            c if !in_tag => plain.push(if c.is_control() { ' ' } else { c }),
            _ => {}
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let mut out = words.join(" ");
    if out.is_empty() {
        return String::new();
    }
    if let Some((i, _)) = out.char_indices().nth(QUOTED) {
        out.truncate(i);
        out.push('…');
    }
    format!(": {out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_quoted_short_and_without_markup() {
        assert_eq!(
            quote(br#"{"title":"Unauthorized","description":"bad password"}"#),
            ": Unauthorized: bad password"
        );
        assert_eq!(
            quote(b"<html><body><h1>Unauthorized</h1><p>Access denied</p></body></html>"),
            ": Unauthorized Access denied"
        );
        assert_eq!(quote(b""), "");
        assert!(quote(&[b'a'; 1000]).chars().count() <= QUOTED + 3);
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
