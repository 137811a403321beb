//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`; `.ci/run` installs it, `$TC_INGEST_CHROMIUM` names another)
//! loads the page of a running daemon fed by the simulator; the rendered
//! DOM is checked (the feeds table, a stale feed and a failing source in
//! red, the chart) and a screenshot saved in the test's directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::*;

/// Chromium: `$TC_INGEST_CHROMIUM`, else Debian's.
fn chromium() -> PathBuf {
    let bin = std::env::var_os("TC_INGEST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        bin.exists(),
        "{} not found: install Debian's chromium (.ci/run does), or set TC_INGEST_CHROMIUM",
        bin.display()
    );
    bin
}

/// Runs headless Chromium on `url` with `args` (its profile under `dir`);
/// its standard output.
async fn browse(dir: &Path, args: &[&str], url: &str) -> String {
    let profile = dir.join("chromium-profile");
    let out = tokio::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the rendered DOM must show.
fn assert_page(dom: &str) {
    assert!(dom.contains("<section id=\"feeds\">"), "{dom}");
    assert!(
        dom.contains("<tr class=\"bad\"><td>quiet</td><td>STALE</td>"),
        "the stale feed in red: {dom}"
    );
    assert!(
        dom.contains("<tr class=\"\"><td>busy</td><td>OK</td>"),
        "{dom}"
    );
    assert!(
        dom.contains("<tr class=\"bad\"><td>down</td><td>http</td><td>FAILING</td>"),
        "the failing source in red: {dom}"
    );
    assert!(dom.contains("<svg id=\"sparkline\""), "{dom}");
    assert_eq!(dom.matches("<rect class=\"bar\"").count(), 24, "{dom}");
    assert!(
        dom.contains("<td>busy/list.txt</td><td class=\"n\">4</td>"),
        "the reject is listed: {dom}"
    );
    assert!(!dom.contains("<script"), "{dom}");
}

#[tokio::test]
async fn the_status_page_in_a_browser_shows_feeds_sources_and_the_chart() {
    let port = free_port();
    let closed = free_port();
    let extra = format!(
        "{QUICK_DELIVERY}[metrics]\nlisten = \"127.0.0.1:{port}\"\n\
         [[feeds]]\ndir = \"busy\"\nname = \"busy\"\nstale_after = \"1h\"\n\
         [[feeds]]\ndir = \"quiet\"\nname = \"quiet\"\nstale_after = \"1s\"\n\
         [[sources]]\nname = \"down\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{closed}/list.txt\"\n\
         interval = \"1h\"\n"
    );
    let app = TestApp::builder().extra_config(&extra).start().await;
    app.drop_file(
        "busy/list.txt",
        b"45.2.0.1\n45.2.0.2\n45.2.0.3\nnot an indicator\n",
    );
    let daemon = app.spawn_daemon_running().await;
    wait_until(
        Duration::from_secs(30),
        "the three are delivered",
        async || app.sim.indicators().len() == 3,
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/");
    // The maintenance tick counts the deliveries and reads feed health.
    wait_until(
        Duration::from_secs(30),
        "the page shows the deliveries",
        async || {
            http_get(&url)
                .await
                .is_some_and(|(_, body)| body.contains("last 24 hours: 3 in all<"))
        },
    )
    .await;
    let (code, _) = http_get(&url).await.unwrap();
    assert_eq!(code, 200);
    let headers = http().get(&url).send().await.unwrap();
    let csp = headers.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );

    let dom = browse(app.path(), &["--dump-dom"], &url).await;
    assert_page(&dom);

    let shot = app.path().join("status-page.png");
    browse(
        app.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1100",
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("TC_INGEST_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    daemon.stop().await;
}
