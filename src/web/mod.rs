//! The daemon's HTTP listener (`metrics.listen`): `/` (the status page),
//! `/metrics` (Prometheus), `/health` (the process answers), `/ready` (the
//! queue is open and delivery is not paused) and `/api/status` (the
//! `status --json` object). Both status reads go through a queue connection
//! of the listener's own. Read-only: nothing here writes.
//! Off loopback, every path but `/health` wants `Authorization: Bearer
//! <the token in metrics.token_file>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

mod page;

pub use page::{Page, render as render_page};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::queue::{Queue, Target};
use crate::status::StatusView;

/// What the handlers share.
#[derive(Clone)]
struct Web {
    metrics: Arc<Metrics>,
    config: watch::Receiver<Arc<Config>>,
    /// The listener's own queue connections: a status read never waits
    /// behind delivery's.
    queue: Queue,
    /// The bearer token every path but `/health` wants, if any.
    token: Option<Arc<str>>,
    started: std::time::Instant,
}

/// Reads `metrics.token_file`: its first line, which must not be empty.
///
/// # Errors
/// The file cannot be read, or holds no token.
fn read_token(path: &std::path::Path) -> anyhow::Result<Arc<str>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("metrics.token_file: cannot read {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    anyhow::ensure!(
        !token.is_empty(),
        "metrics.token_file: {} holds no token",
        path.display()
    );
    Ok(Arc::from(token))
}

/// Whether two byte strings are equal, in time that does not depend on
/// where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lets a request through when no token is set, or it carries the token.
async fn authorized(State(web): State<Web>, req: Request, next: Next) -> Response {
    let Some(token) = &web.token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if same(given.as_bytes(), token.as_bytes()) {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "a bearer token is needed (metrics.token_file)\n",
        )
            .into_response()
    }
}

async fn prometheus(State(web): State<Web>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        web.metrics.render(),
    )
        .into_response()
}

async fn ready(State(web): State<Web>) -> Response {
    match web.metrics.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// The newest dead letters and rejects the page lists.
const LISTED: u32 = 10;

/// The status page.
async fn status_page(State(web): State<Web>) -> Response {
    match page_html(&web).await {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, page::CSP.as_str()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "no-store"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            html,
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the queue: {e}\n"),
        )
            .into_response(),
    }
}

/// The page's HTML, read cheaply (see [`StatusView::read_page`]).
async fn page_html(web: &Web) -> anyhow::Result<String> {
    let uptime = web.started.elapsed().as_secs();
    page_of(&web.queue, |v| with_limits(v, web), uptime).await
}

/// The page of `queue` without a config's limits (`bench page`).
///
/// # Errors
/// Database errors.
pub async fn page_html_of(queue: &Queue) -> anyhow::Result<String> {
    page_of(queue, |v| v, 0).await
}

async fn page_of(
    queue: &Queue,
    limits: impl FnOnce(StatusView) -> StatusView,
    uptime_secs: u64,
) -> anyhow::Result<String> {
    let view = limits(StatusView::read_page(queue).await?);
    let deliveries = queue.delivery_history(view.at, 24).await?;
    let dead = queue.latest_dead(LISTED).await?;
    let rejects = queue.latest_rejects(LISTED).await?;
    Ok(page::render(&Page {
        view: &view,
        deliveries: &deliveries,
        dead: &dead,
        rejects: &rejects,
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs,
    }))
}

/// The status as `status --json` prints it.
async fn api_status(State(web): State<Web>) -> Response {
    match status_view(&web).await {
        Ok(view) => axum::Json(crate::status::json(&view)).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the queue: {e}\n"),
        )
            .into_response(),
    }
}

/// The status at this moment, with the configured sources' and feeds'
/// limits.
async fn status_view(web: &Web) -> anyhow::Result<StatusView> {
    Ok(with_limits(StatusView::read(&web.queue).await?, web))
}

/// The view with the configured sources' and feeds' limits.
fn with_limits(view: StatusView, web: &Web) -> StatusView {
    let cfg = web.config.borrow().clone();
    let sources: Vec<_> = cfg
        .sources
        .iter()
        .map(|s| (s.name.clone(), s.stale_after))
        .collect();
    let feeds: Vec<_> = cfg
        .feeds
        .iter()
        .filter_map(|r| Some((r.name.clone()?, r.lifecycle.stale_after)))
        .collect();
    view.with_sources(&sources).with_feeds(&feeds)
}

/// Serves the listener until cancelled.
///
/// # Errors
/// The address cannot be bound, the token file cannot be read, or the
/// queue cannot be opened.
pub async fn serve(
    addr: SocketAddr,
    token_file: Option<PathBuf>,
    metrics: Arc<Metrics>,
    config: watch::Receiver<Arc<Config>>,
    queue: Target,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let token = token_file.as_deref().map(read_token).transpose()?;
    let queue = Queue::connect(&queue).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen: cannot bind {addr}: {e}"))?;
    let web = Web {
        metrics,
        config,
        queue,
        token,
        started: std::time::Instant::now(),
    };
    let guarded = axum::Router::new()
        .route("/", axum::routing::get(status_page))
        .route("/metrics", axum::routing::get(prometheus))
        .route("/ready", axum::routing::get(ready))
        .route("/api/status", axum::routing::get(api_status))
        .route_layer(axum::middleware::from_fn_with_state(
            web.clone(),
            authorized,
        ));
    let app = guarded
        .route("/health", axum::routing::get(|| async { "ok\n" }))
        .with_state(web);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    Ok(())
}
