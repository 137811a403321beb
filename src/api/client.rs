//! The HTTP client: signs each request over the exact path and query sent,
//! reuses connections, and turns every answer (or failure to get one) into an
//! [`Outcome`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use url::Url;

use super::outcome::{Outcome, classify};
use super::request::{ApiRequest, Method};
use super::sign::{Clock, authorization, signature, token_authorization};
use crate::config::{ApiConfig, Credentials};
use crate::indicator::Attribute;

/// One answer: its classification, status, and raw body (for owners and tests).
#[derive(Debug, Clone)]
pub struct Response {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub body: bytes::Bytes,
}

/// A signing ThreatConnect client. Cheap to clone; rebuilt when the config is
/// reloaded (a corrected secret or a new token), sharing the same [`Clock`].
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    access_id: String,
    credentials: Credentials,
    /// `proxy http://host:port (api.proxy)`, named in connection errors.
    proxy: Option<String>,
    clock: Arc<Clock>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("access_id", &self.access_id)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// Installs ring as rustls' crypto provider (reqwest is built without one).
/// Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    /// Requests go through `cfg.proxy` when there is one, and straight to
    /// the server otherwise: the config decided (`HTTPS_PROXY` and `NO_PROXY`
    /// included), so reqwest does not look at the environment again.
    ///
    /// # Errors
    /// When the CA file cannot be read, the proxy URL is refused, or the
    /// HTTP client cannot be built.
    pub fn new(cfg: &ApiConfig, clock: Arc<Clock>) -> anyhow::Result<Self> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .connect_timeout(Duration::from_secs(cfg.timeout_secs.min(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("tc-ingest/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading api.ca_file {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("parsing api.ca_file {} as PEM", ca.display()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder = match &cfg.proxy {
            Some(p) => {
                let mut proxy = reqwest::Proxy::all(p.url.as_str())
                    .with_context(|| format!("setting up the {p}"))?;
                if let Some(user) = &p.username {
                    let password = p.password.as_ref().map_or("", |s| s.expose());
                    proxy = proxy.basic_auth(user, password);
                }
                builder.proxy(proxy)
            }
            None => builder.no_proxy(),
        };
        Ok(Self {
            http: builder.build().context("building the HTTP client")?,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            access_id: cfg.access_id.clone(),
            credentials: cfg
                .credentials
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!(crate::config::NO_CREDENTIALS))?
                .load()
                .map_err(anyhow::Error::msg)?,
            proxy: cfg.proxy.as_ref().map(|p| p.to_string()),
            clock,
        })
    }

    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The proxy requests go through (`proxy http://host:port (api.proxy)`).
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// Sends one request and classifies the answer. Never fails: a transport
    /// problem is [`Outcome::Transport`].
    pub async fn send(&self, req: &ApiRequest) -> Response {
        let url = match Url::parse(&format!("{}{}", self.base, req.path_and_query)) {
            Ok(u) => u,
            Err(e) => {
                return Response {
                    outcome: Outcome::Transport {
                        message: format!("invalid URL: {e}"),
                    },
                    status: None,
                    body: bytes::Bytes::new(),
                };
            }
        };
        // Sign exactly the request target that goes on the wire, as parsed
        // and serialized by the same URL type reqwest sends.
        let target = match url.query() {
            Some(q) => format!("{}?{}", url.path(), q),
            None => url.path().to_string(),
        };
        let mut builder = match req.method {
            Method::Get => self.http.get(url),
            Method::Post => self.http.post(url),
            Method::Put => self.http.put(url),
            Method::Delete => self.http.delete(url),
        };
        builder = match &self.credentials {
            Credentials::Hmac { secret, .. } => {
                let ts = self.clock.now();
                let sig = signature(secret.expose().as_bytes(), &target, req.method.as_str(), ts);
                builder
                    .header("Timestamp", ts.to_string())
                    .header("Authorization", authorization(&self.access_id, &sig))
            }
            Credentials::Token { token, .. } => {
                builder.header("Authorization", token_authorization(token.expose()))
            }
        };
        if let Some(body) = &req.body {
            builder = builder
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(body).expect("JSON values serialize"));
        } else if let Some(data) = &req.upload {
            builder = builder
                .header("Content-Type", "application/octet-stream")
                .body(data.clone());
        }
        let resp = match builder.send().await {
            Ok(r) => r,
            Err(e) => return transport(e, self.proxy.as_deref()),
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (content_type, retry_after, date) = (
            header("content-type"),
            header("retry-after"),
            header("date"),
        );
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return transport(e, self.proxy.as_deref()),
        };
        let outcome = classify(
            status,
            content_type.as_deref(),
            &body,
            retry_after.as_deref(),
            date.as_deref(),
        );
        Response {
            outcome,
            status: Some(status),
            body,
        }
    }

    /// `GET /v2/owners`: the owners visible to the API user.
    ///
    /// # Errors
    /// The [`Outcome`] of a failed call, or `Unexpected` for an unreadable body.
    pub async fn owners(&self) -> Result<Vec<Owner>, Outcome> {
        self.list(&super::Endpoints::default().owners(), "owner")
            .await
    }

    /// The instance's security label names (`GET /v2/securityLabels`).
    ///
    /// # Errors
    /// The [`Outcome`] of a failed call, or `Unexpected` for an unreadable body.
    pub async fn security_labels(&self) -> Result<Vec<String>, Outcome> {
        #[derive(serde::Deserialize)]
        struct Label {
            name: String,
        }
        let labels: Vec<Label> = self
            .list(
                &super::Endpoints::default().security_labels(),
                "securityLabel",
            )
            .await?;
        Ok(labels.into_iter().map(|l| l.name).collect())
    }

    /// The attributes of an indicator, from a request built by
    /// [`super::Endpoints::attributes`].
    ///
    /// # Errors
    /// The [`Outcome`] of a failed call, or `Unexpected` for an unreadable body.
    pub async fn attributes(&self, req: &ApiRequest) -> Result<Vec<Attribute>, Outcome> {
        self.list(req, "attribute").await
    }

    /// The id of the first indicator a [`super::Endpoints::lookup`] finds
    /// (v3: `{"data": [{"id": ..}, ..]}`), `None` when it finds none.
    ///
    /// # Errors
    /// The [`Outcome`] of a failed call, or `Unexpected` for an unreadable body.
    pub async fn lookup_id(&self, req: &ApiRequest) -> Result<Option<i64>, Outcome> {
        let resp = self.send(req).await;
        if resp.outcome != Outcome::Success {
            return Err(resp.outcome);
        }
        #[derive(serde::Deserialize)]
        struct Found {
            id: i64,
        }
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(default)]
            data: Vec<Found>,
        }
        serde_json::from_slice::<Envelope>(&resp.body)
            .map(|e| e.data.first().map(|f| f.id))
            .map_err(|e| Outcome::Unexpected {
                status: resp.status.unwrap_or(0),
                body: format!("unreadable indicator list: {e}"),
            })
    }

    /// Sends a GET whose answer is `{"data": {"<field>": [...]}}`.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        req: &ApiRequest,
        field: &str,
    ) -> Result<Vec<T>, Outcome> {
        let resp = self.send(req).await;
        if resp.outcome != Outcome::Success {
            return Err(resp.outcome);
        }
        #[derive(serde::Deserialize)]
        struct Envelope {
            data: serde_json::Map<String, serde_json::Value>,
        }
        let unreadable = |e: String| Outcome::Unexpected {
            status: resp.status.unwrap_or(0),
            body: format!("unreadable {field} list: {e}"),
        };
        let envelope: Envelope =
            serde_json::from_slice(&resp.body).map_err(|e| unreadable(e.to_string()))?;
        match envelope.data.get(field) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| unreadable(e.to_string())),
        }
    }
}

/// An owner as `GET /v2/owners` lists it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Owner {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A request that got no usable answer; `proxy` (when requests go through
/// one) is named, since a refused or failing proxy looks like a server
/// problem otherwise.
fn transport(e: reqwest::Error, proxy: Option<&str>) -> Response {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the answer"
    } else {
        "request failed"
    };
    // The error's chain carries the cause (reset, DNS, TLS); the URL it
    // names holds no secret (the signature travels in a header).
    let mut message = match proxy {
        Some(p) => format!("{kind} (through the {p}): {e}"),
        None => format!("{kind}: {e}"),
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    Response {
        outcome: Outcome::Transport { message },
        status: None,
        body: bytes::Bytes::new(),
    }
}
