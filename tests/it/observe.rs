//! What the daemon tells the world around it: log lines with journald
//! priorities, JSON logs, systemd's notifications, and the metrics
//! endpoint.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn metrics_endpoint_reports_requests_jobs_and_files() {
    let app = TestApp::builder().extra_config(FAST_POLICY).start().await;
    let mut d = app.daemon().await;
    app.drop_file("m.txt", b"1.1.1.1\n2.2.2.2\nnope\n");
    d.once().await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let metrics = d.metrics.clone();
    let (cfg, path) = (d.cfg_tx.subscribe(), d.target.clone());
    let server =
        Background::spawn(|cancel| tc_ingest::web::serve(addr, None, metrics, cfg, path, cancel));
    d.metrics.set_jobs(&d.queue.stats().await.unwrap().by_state);
    let mut text = String::new();
    wait_until(
        Duration::from_secs(5),
        "the metrics endpoint answers",
        async || match http_get(&format!("http://{addr}/metrics")).await {
            Some((_, body)) => {
                text = body;
                true
            }
            None => false,
        },
    )
    .await;
    assert_contains_all(
        &text,
        &[
            "tc_ingest_requests_total{class=\"success\"} 2",
            "tc_ingest_jobs{state=\"delivered\"} 2",
            "tc_ingest_files_total{outcome=\"done\"} 1",
            "tc_ingest_request_duration_seconds_count 2",
            "tc_ingest_paused 0",
        ],
    );
    // The status as `status --json` prints it, read through the
    // listener's own connection.
    let (code, body) = http_get(&format!("http://{addr}/api/status"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["jobs"]["delivered"], 2, "{json}");
    assert_eq!(json["rows_rejected"], 1, "{json}");
    server.stop().await;
}

/// With `metrics.token_file`, every path but `/health` wants the bearer
/// token; the token is read from the file and never shown.
#[tokio::test]
async fn the_listener_wants_the_bearer_token_of_token_file() {
    let app = TestApp::start().await;
    let d = app.daemon().await;
    let token_file = app.path().join("web.token");
    std::fs::write(&token_file, "s3cret-web-token\n").unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (metrics, cfg, path) = (d.metrics.clone(), d.cfg_tx.subscribe(), d.target.clone());
    let server = Background::spawn(|cancel| {
        tc_ingest::web::serve(addr, Some(token_file), metrics, cfg, path, cancel)
    });
    wait_until(Duration::from_secs(5), "the listener answers", async || {
        http_get(&format!("http://{addr}/health")).await.is_some()
    })
    .await;
    let client = reqwest::Client::new();
    for path in ["/metrics", "/api/status", "/ready"] {
        let url = format!("http://{addr}{path}");
        let none = client.get(&url).send().await.unwrap();
        assert_eq!(none.status(), 401, "{path}");
        assert_eq!(none.headers()["www-authenticate"], "Bearer");
        let none_body = none.text().await.unwrap();
        assert!(!none_body.contains("s3cret"), "{none_body}");
        let wrong = client
            .get(&url)
            .bearer_auth("s3cret-web-tokem")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let right = client
            .get(&url)
            .bearer_auth("s3cret-web-token")
            .send()
            .await
            .unwrap();
        assert_ne!(right.status(), 401, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn under_journald_every_line_carries_its_priority() {
    use std::os::unix::fs::MetadataExt;
    let app = TestApp::start().await;
    std::fs::create_dir_all(app.incoming()).unwrap();
    app.rename_in("ok.txt", b"a.example.com\n");
    app.rename_in("broken.json", b"[\"b.example.com\", {broken");
    let (mut reader, writer) = std::io::pipe().unwrap();
    let meta = std::fs::File::from(std::os::fd::OwnedFd::from(writer.try_clone().unwrap()))
        .metadata()
        .unwrap();
    let status = command(&[
        "run",
        "--once",
        "--config",
        app.config_path().to_str().unwrap(),
    ])
    .env("RUST_LOG", "info")
    .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
    .stderr(writer)
    .status()
    .await
    .unwrap();
    assert_eq!(status.code(), Some(1));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut reader, &mut log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with('<')),
        "a line without a priority:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("broken.json")),
        "the failed file is a warning:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("feed file finished")),
        "{log}"
    );
    assert!(
        !log.contains("error=\"\"") && !log.contains("error= "),
        "{log}"
    );
}

#[tokio::test]
async fn json_logs_carry_no_key_twice() {
    let app = TestApp::builder()
        .faults(tc_ingest::sim::Faults {
            denied_owners: vec!["Common Community".into()],
            ..faults()
        })
        .extra_config(UNTHROTTLED)
        .start()
        .await;
    std::fs::create_dir_all(app.incoming()).unwrap();
    app.rename_in("held.txt", b"a.example.com\n");
    let out = app.binary(&["run", "--once", "--log-format", "json"]).await;
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(log.contains("owner held"), "{log}");
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let keys: Vec<&str> = line
            .match_indices("\":")
            .map(|(i, _)| {
                let start = line[..i].rfind('"').unwrap() + 1;
                &line[start..i]
            })
            .collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(keys.len(), unique.len(), "a key twice: {line}");
    }
}

#[tokio::test]
async fn reload_sends_reloading_with_the_monotonic_time() {
    let app = TestApp::start().await;
    let sock_path = app.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&sock_path).unwrap();
    let mut child = command(&["run", "--config", app.config_path().to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .spawn()
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut next = async || {
        let n = tokio::time::timeout(Duration::from_secs(15), sock.recv(&mut buf))
            .await
            .expect("a notification")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    while !next().await.contains("READY=1") {}
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGHUP) };
    let reloading = loop {
        let m = next().await;
        if m.contains("RELOADING=1") {
            break m;
        }
    };
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    while !next().await.contains("READY=1") {}
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn metrics_exist_from_the_start_escape_labels_and_answer_health_and_ready() {
    let port = free_port();
    let app = TestApp::builder()
        .extra_config(&format!(
            "[metrics]\nlisten = \"127.0.0.1:{port}\"\n\
             [[feeds]]\nmatch = \"*.txt\"\nowner = 'Q \"x\" Org'\n"
        ))
        .start()
        .await;
    let daemon = app.spawn_daemon_with_queue().await;
    let get = async |path: &str| http_get(&format!("http://127.0.0.1:{port}{path}")).await;
    let mut first = String::new();
    wait_until(
        Duration::from_secs(10),
        "the metrics endpoint",
        async || match get("/metrics").await {
            Some((200, t)) => {
                first = t;
                true
            }
            _ => false,
        },
    )
    .await;
    assert_contains_all(
        &first,
        &[
            "tc_ingest_jobs{state=\"pending\"} 0",
            "tc_ingest_jobs{state=\"dead\"} 0",
            "tc_ingest_requests_total{class=\"validation\"} 0",
            "tc_ingest_files_total{outcome=\"failed\"} 0",
            "tc_ingest_feed_rows_total{rule=\"feeds[0]\",outcome=\"queued\"} 0",
            "tc_ingest_oldest_pending_seconds 0",
            "tc_ingest_paused 0",
        ],
    );
    assert_eq!(get("/health").await.unwrap().0, 200);
    assert_eq!(get("/ready").await.unwrap(), (200, "ready\n".to_string()));

    app.rename_in("q.txt", b"q.example.com\n");
    let mut later = String::new();
    wait_until(
        Duration::from_secs(20),
        "a request of that owner",
        async || {
            later = get("/metrics").await.map(|(_, t)| t).unwrap_or_default();
            later.contains("tc_ingest_owner_requests_total{")
        },
    )
    .await;
    assert!(
        later.contains(r#"owner="Q \"x\" Org",type="Host""#),
        "{later}"
    );
    assert!(
        later.contains("tc_ingest_feed_rows_total{rule=\"feeds[0]\",outcome=\"queued\"} 1"),
        "{later}"
    );
    daemon.stop().await;
}
