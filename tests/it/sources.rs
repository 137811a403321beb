//! HTTP(S) documents and MISP feeds as pull sources, against local
//! servers: conditional GETs (ETag, Last-Modified, the same bytes again),
//! gzip both ways, the size cap, a redirect from https to http, a stalled
//! body, a MISP feed whose events change between polls, a preset source.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::helpers::*;

/// What the test server serves and saw.
#[derive(Default)]
struct Served {
    body: Vec<u8>,
    etag: Option<String>,
    last_modified: Option<String>,
    /// Files of a MISP feed, by name.
    files: std::collections::BTreeMap<String, Vec<u8>>,
    /// Answers of 304.
    not_modified: u64,
    /// Paths asked for, in order.
    asked: Vec<String>,
    /// The last `Authorization` header of `/list.txt`.
    auth: Option<String>,
    https_port: u16,
    http_port: u16,
}

type Shared = Arc<Mutex<Served>>;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

async fn list(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    s.asked.push("/list.txt".into());
    let asked = |h| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    s.auth = asked(header::AUTHORIZATION)
        .or_else(|| asked(header::HeaderName::from_static("x-api-key")));
    let fresh = (s.etag.is_some() && asked(header::IF_NONE_MATCH) == s.etag)
        || (s.last_modified.is_some() && asked(header::IF_MODIFIED_SINCE) == s.last_modified);
    if fresh {
        s.not_modified += 1;
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut r = Response::new(Body::from(s.body.clone()));
    if let Some(e) = &s.etag {
        r.headers_mut().insert(header::ETAG, e.parse().unwrap());
    }
    if let Some(lm) = &s.last_modified {
        r.headers_mut()
            .insert(header::LAST_MODIFIED, lm.parse().unwrap());
    }
    r
}

async fn encoded(State(s): State<Shared>) -> Response {
    let body = gzip(&s.lock().unwrap().body);
    ([(header::CONTENT_ENCODING, "gzip")], body).into_response()
}

async fn gz_file(State(s): State<Shared>) -> Response {
    let body = gzip(&s.lock().unwrap().body);
    ([(header::CONTENT_TYPE, "application/gzip")], body).into_response()
}

async fn big() -> Response {
    let line = "192.0.2.1\n".repeat(10_000);
    let chunks = futures::stream::iter(
        (0..1000).map(move |_| Ok::<_, std::io::Error>(bytes::Bytes::from(line.clone()))),
    );
    Body::from_stream(chunks).into_response()
}

async fn stall() -> Response {
    let first =
        futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from("192.0.2.1\n")) });
    let never = futures::stream::once(async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, std::io::Error>(bytes::Bytes::from("192.0.2.2\n"))
    });
    Body::from_stream(futures::StreamExt::chain(first, never)).into_response()
}

async fn to_http(State(s): State<Shared>) -> Response {
    let port = s.lock().unwrap().http_port;
    (
        StatusCode::FOUND,
        [(
            header::LOCATION,
            format!("http://127.0.0.1:{port}/list.txt"),
        )],
    )
        .into_response()
}

async fn feed_file(State(s): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let mut s = s.lock().unwrap();
    s.asked.push(format!("/feed/{name}"));
    match s.files.get(&name) {
        Some(b) => b.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The test server on plain HTTP (and, with `tls`, the same routes over
/// HTTPS with a private CA: its PEM is returned).
async fn serve(tls: bool) -> (Shared, Option<String>) {
    let shared: Shared = Arc::default();
    let router = axum::Router::new()
        .route("/list.txt", get(list))
        .route("/encoded.txt", get(encoded))
        .route("/list.txt.gz", get(gz_file))
        .route("/big.txt", get(big))
        .route("/stall.txt", get(stall))
        .route("/to-http", get(to_http))
        .route(
            "/to-localhost",
            get(|State(s): State<Shared>| async move {
                let port = s.lock().unwrap().http_port;
                (
                    StatusCode::FOUND,
                    [(
                        header::LOCATION,
                        format!("http://localhost:{port}/list.txt"),
                    )],
                )
            }),
        )
        .route(
            "/busy.txt",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "120")],
                    "slow down",
                )
            }),
        )
        .route("/feed/{name}", get(feed_file))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    shared.lock().unwrap().http_port = listener.local_addr().unwrap().port();
    let r = router.clone();
    tokio::spawn(async move { axum::serve(listener, r).await });
    if !tls {
        return (shared, None);
    }
    let (ca, cert, key) = private_ca();
    let addr = https_serve(router, cert, key).await;
    shared.lock().unwrap().https_port = addr.port();
    (shared, Some(ca))
}

fn http_source(name: &str, port: u16, path: &str, extra: &str) -> String {
    format!(
        "[[sources]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}{path}\"\n{extra}"
    )
}

fn values(app: &TestApp) -> BTreeSet<String> {
    app.sim.indicators().into_iter().map(|i| i.value).collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn conditional_gets_write_nothing_when_nothing_changed() {
    let (srv, _) = serve(false).await;
    let port = srv.lock().unwrap().http_port;
    {
        let mut s = srv.lock().unwrap();
        s.body = b"# a list\n192.0.2.1\n192.0.2.2\n".to_vec();
        s.etag = Some("\"v1\"".into());
    }
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}{}",
            http_source("list", port, "/list.txt", "")
        ))
        .start()
        .await;
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(values(&app), set(&["192.0.2.1", "192.0.2.2"]));
    // ETag: a 304, nothing written.
    d.once().await;
    assert_eq!(srv.lock().unwrap().not_modified, 1);
    let s = &d.queue.source_states().await.unwrap()[0];
    assert_eq!(s.files_fetched, 1, "{s:?}");
    assert_eq!(s.etag.as_deref(), Some("\"v1\""));
    // Last-Modified instead: a 304 again.
    {
        let mut s = srv.lock().unwrap();
        s.etag = None;
        s.last_modified = Some("Wed, 02 Dec 2026 10:00:00 GMT".into());
    }
    d.once().await; // learns the date (same bytes: nothing written)
    d.once().await;
    assert_eq!(srv.lock().unwrap().not_modified, 2);
    // No validators at all: the same bytes again write nothing.
    srv.lock().unwrap().last_modified = None;
    d.once().await;
    let s = &d.queue.source_states().await.unwrap()[0];
    assert_eq!(s.files_fetched, 1, "{s:?}");
    // New content: one new file, its new value delivered.
    srv.lock().unwrap().body = b"192.0.2.1\n192.0.2.2\n192.0.2.3\n".to_vec();
    d.once().await;
    let s = &d.queue.source_states().await.unwrap()[0];
    assert_eq!(s.files_fetched, 2, "{s:?}");
    assert_eq!(values(&app), set(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
}

#[tokio::test]
async fn gzip_bodies_are_read_whether_encoded_or_a_gz_file() {
    let (srv, _) = serve(false).await;
    let port = srv.lock().unwrap().http_port;
    srv.lock().unwrap().body = b"198.51.100.7\n".to_vec();
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}{}{}",
            http_source("encoded", port, "/encoded.txt", ""),
            http_source("gzfile", port, "/list.txt.gz", "")
        ))
        .start()
        .await;
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(values(&app), set(&["198.51.100.7"]));
    let states = d.queue.source_states().await.unwrap();
    assert!(states.iter().all(|s| s.files_fetched == 1), "{states:?}");
    // The .gz file was written as it came (intake reads gzip itself).
    let done = names(&app.path().join("done"));
    assert!(done.iter().any(|n| n.ends_with("list.txt.gz")), "{done:?}");
}

#[tokio::test]
async fn the_size_cap_a_stalled_body_and_a_redirect_to_http_are_failures_that_write_nothing() {
    let (srv, ca) = serve(true).await;
    let (port, https) = {
        let s = srv.lock().unwrap();
        (s.http_port, s.https_port)
    };
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca.unwrap()).unwrap();
    let app = TestApp::builder()
        .extra_config(&format!(
            "{}{}[[sources]]\nname = \"downgrade\"\nkind = \"http\"\n\
             url = \"https://127.0.0.1:{https}/to-http\"\nca_file = \"{}\"\n",
            http_source("big", port, "/big.txt", "max_bytes = \"100KB\"\n"),
            http_source("stalled", port, "/stall.txt", "read_timeout = \"1s\"\n")
                + &http_source("busy", port, "/busy.txt", ""),
            ca_file.path().display()
        ))
        .start()
        .await;
    let mut d = app.daemon().await;
    d.once().await;
    let states = d.queue.source_states().await.unwrap();
    let class = |name: &str| {
        let s = states.iter().find(|s| s.name == name).unwrap();
        (
            s.last_error_class.clone().unwrap_or_default(),
            s.last_error.clone().unwrap_or_default(),
        )
    };
    let (c, m) = class("big");
    assert_eq!(c, "too_large", "{m}");
    assert!(m.contains("max_bytes"), "{m}");
    let (c, m) = class("stalled");
    assert_eq!(c, "transport", "{m}");
    assert!(m.contains("timed out"), "{m}");
    let (c, m) = class("busy");
    assert_eq!(c, "throttled", "{m}");
    assert!(m.contains("429") && m.contains("slow down"), "{m}");
    let (c, m) = class("downgrade");
    assert_eq!(c, "transport", "{m}");
    assert!(m.contains("https to http"), "{m}");
    // Nothing reached the directories, not even a temporary file.
    for name in ["big", "stalled", "busy", "downgrade"] {
        assert!(names(&app.incoming().join(name)).is_empty(), "{name}");
    }
    assert!(!srv.lock().unwrap().asked.contains(&"/list.txt".to_string()));
    assert!(app.sim.indicators().is_empty());
}

/// A MISP event with one address attribute.
fn event(uuid: &str, ts: i64, ips: &[&str]) -> Vec<u8> {
    let attrs: Vec<serde_json::Value> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            serde_json::json!({"uuid": format!("{}{i:04}", &uuid[..32]), "type": "ip-dst",
                "category": "Network activity", "value": ip, "to_ids": true, "timestamp": ts.to_string()})
        })
        .collect();
    serde_json::to_vec(
        &serde_json::json!({"Event": {"uuid": uuid, "info": "test event",
        "timestamp": ts.to_string(), "Attribute": attrs}}),
    )
    .unwrap()
}

fn manifest(events: &[(&str, i64)]) -> Vec<u8> {
    let m: serde_json::Map<String, serde_json::Value> = events
        .iter()
        .map(|(u, ts)| {
            (
                u.to_string(),
                serde_json::json!({"info": "test event", "timestamp": ts.to_string()}),
            )
        })
        .collect();
    serde_json::to_vec(&m).unwrap()
}

/// The fixture feed (made with PyMISP) with event `a` added to it.
fn fixture_feed(s: &mut Served, a: &str) {
    let fixture = data("../fixtures/misp/feed");
    for f in std::fs::read_dir(&fixture).unwrap() {
        let f = f.unwrap();
        s.files.insert(
            f.file_name().to_string_lossy().into(),
            std::fs::read(f.path()).unwrap(),
        );
    }
    let mut m: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&s.files["manifest.json"]).unwrap();
    m.insert(a.into(), serde_json::json!({"timestamp": "1700000000"}));
    s.files
        .insert("manifest.json".into(), serde_json::to_vec(&m).unwrap());
    s.files.insert(
        format!("{a}.json"),
        event(a, 1_700_000_000, &["192.0.2.10"]),
    );
}

#[tokio::test]
async fn a_misp_feed_fetches_new_and_changed_events_and_records_removed_ones() {
    const A: &str = "11111111-1111-4111-8111-111111111111";
    const B: &str = "22222222-2222-4222-8222-222222222222";
    let (srv, _) = serve(false).await;
    let port = srv.lock().unwrap().http_port;
    // The first poll: the PyMISP-made fixture feed and event A.
    fixture_feed(&mut srv.lock().unwrap(), A);
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}[[sources]]\nname = \"misp\"\nkind = \"misp\"\nurl = \"http://127.0.0.1:{port}/feed/\"\n"
        ))
        .start()
        .await;
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    let first = values(&app);
    assert!(
        first.contains("192.0.2.10") && first.contains("203.0.113.10"),
        "{first:?}"
    );
    let s = &d.queue.source_states().await.unwrap()[0];
    assert_eq!(s.files_fetched, 2, "{s:?}");
    // A changes (a newer timestamp), B arrives, the fixture's event stays.
    {
        let mut s = srv.lock().unwrap();
        let mut m: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&s.files["manifest.json"]).unwrap();
        m.insert(A.into(), serde_json::json!({"timestamp": "1700000100"}));
        m.insert(B.into(), serde_json::json!({"timestamp": 1_700_000_050}));
        s.files
            .insert("manifest.json".into(), serde_json::to_vec(&m).unwrap());
        s.files.insert(
            format!("{A}.json"),
            event(A, 1_700_000_100, &["192.0.2.10", "192.0.2.11"]),
        );
        s.files.insert(
            format!("{B}.json"),
            event(B, 1_700_000_050, &["192.0.2.20"]),
        );
        s.asked.clear();
    }
    d.once().await;
    let asked = srv.lock().unwrap().asked.clone();
    assert_eq!(
        asked,
        [
            "/feed/manifest.json".to_string(),
            format!("/feed/{B}.json"),
            format!("/feed/{A}.json")
        ],
        "only what changed, oldest first"
    );
    assert!(values(&app).is_superset(&set(&["192.0.2.11", "192.0.2.20"])));
    // B leaves the manifest: recorded as removed.
    {
        let mut s = srv.lock().unwrap();
        let m = manifest(&[(A, 1_700_000_100)]);
        s.files.insert("manifest.json".into(), m);
    }
    d.once().await;
    assert_eq!(d.queue.source_states().await.unwrap()[0].events_removed, 2);
    let events = d.queue.source_events("misp").await.unwrap();
    assert_eq!(events.keys().collect::<Vec<_>>(), [&A.to_string()]);
}

#[tokio::test]
async fn a_preset_source_fetches_its_feed_and_reads_it_with_the_presets_rule() {
    let (srv, _) = serve(false).await;
    let port = srv.lock().unwrap().http_port;
    srv.lock().unwrap().body = std::fs::read(data("presets/spamhaus-drop.txt")).unwrap();
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}[[sources]]\nname = \"spamhaus\"\npreset = \"spamhaus-drop\"\n\
             url = \"http://127.0.0.1:{port}/list.txt\"\n"
        ))
        .start()
        .await;
    // The preset's kind and interval, and its feed rule for the directory.
    let cfg = app.config();
    assert_eq!(cfg.sources[0].interval, Duration::from_secs(12 * 3600));
    assert!(
        cfg.feeds
            .iter()
            .any(|f| f.dir.as_deref() == Some(std::path::Path::new("spamhaus")))
    );
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    let got = app.sim.indicators();
    assert!(!got.is_empty());
    assert!(
        got.iter()
            .all(|i| i.kind == "CIDR" && i.tags.contains("spamhaus-drop")),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_source_added_on_sighup_is_polled_and_turns_stale_when_nothing_new_comes() {
    let (srv, _) = serve(false).await;
    let port = srv.lock().unwrap().http_port;
    {
        let mut s = srv.lock().unwrap();
        s.body = b"192.0.2.77\n".to_vec();
        s.etag = Some("\"same\"".into());
    }
    let metrics = free_port();
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n"
        ))
        .start()
        .await;
    let password = app.path().join("late.password");
    std::fs::write(&password, "hunter2-secret\n").unwrap();
    let daemon = app.spawn_daemon_running().await;
    app.edit_config(|text| {
        text + &http_source(
            "late",
            port,
            "/list.txt",
            &format!(
                "interval = \"1s\"\nstale_after = \"2s\"\nusername = \"reader\"\npassword_file = \"{}\"\n",
                password.display()
            ),
        )
    });
    daemon.signal(libc::SIGHUP);
    wait_until(
        Duration::from_secs(20),
        "the new source delivered",
        async || values(&app) == set(&["192.0.2.77"]),
    )
    .await;
    assert_eq!(
        srv.lock().unwrap().auth.as_deref(),
        Some("Basic cmVhZGVyOmh1bnRlcjItc2VjcmV0"),
        "reader:hunter2-secret, the file's newline left out"
    );
    // Every later poll is a 304: nothing new, so stale after 2 s.
    wait_until(
        Duration::from_secs(20),
        "the source shown stale",
        async || {
            let out = app.binary(&["sources", "--json"]).await;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v[0]["health"] == "stale"
        },
    )
    .await;
    let scrape = http_get(&format!("http://127.0.0.1:{metrics}/metrics"))
        .await
        .unwrap()
        .1;
    assert!(
        scrape.contains("tc_ingest_source_stale{source=\"late\"} 1"),
        "{scrape}"
    );
    assert!(
        scrape.contains("tc_ingest_source_fetches_total{source=\"late\",result=\"unchanged\"}"),
        "{scrape}"
    );
    let text = output_text(&app.binary(&["sources"]).await);
    assert!(text.contains("STALE"), "{text}");
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        log.matches("source stale").count(),
        1,
        "one line per change: {log}"
    );
    // The password is in no log line and in no file but its own.
    assert!(!log.contains("hunter2"), "{log}");
    app.assert_secret_in_no_file("hunter2", &["late.password"]);
}

#[tokio::test]
async fn a_redirect_to_another_origin_does_not_carry_the_sources_header() {
    let (srv, _) = serve(false).await;
    let port = srv.lock().unwrap().http_port;
    srv.lock().unwrap().body = b"192.0.2.91\n".to_vec();
    let app = TestApp::builder().start().await;
    let header = app.path().join("key.header");
    std::fs::write(&header, "X-Api-Key: k-12345\n").unwrap();
    let source = |name: &str, path: &str| {
        http_source(
            name,
            port,
            path,
            &format!("header_file = \"{}\"\n", header.display()),
        )
    };
    app.edit_config(|t| t + &source("direct", "/list.txt"));
    let mut d = app.daemon().await;
    d.once().await;
    assert_eq!(
        srv.lock().unwrap().auth.as_deref(),
        Some("k-12345"),
        "sent to its own origin"
    );
    // 127.0.0.1 redirects to localhost: another origin, the header stays home.
    drop(d);
    app.edit_config(|t| t + &source("moved", "/to-localhost"));
    let mut d = app.daemon().await;
    d.once().await;
    let s = d.queue.source_states().await.unwrap();
    assert!(s.iter().all(|s| s.consecutive_failures == 0), "{s:?}");
    assert_eq!(srv.lock().unwrap().auth, None, "not sent across origins");
}
