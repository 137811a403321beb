//! Operating it day to day (issue 14): queue commands without the secret,
//! a status that tells the truth, `why`, honest logs, retention, metrics.

use std::time::Duration;

use crate::helpers::*;

/// Rewrites the test config without `api.secret_key`: a service whose
/// secret reaches only the daemon (a systemd credential).
fn drop_secret(app: &TestApp) {
    let text = std::fs::read_to_string(app.config_path()).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("secret_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(app.config_path(), text).unwrap();
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn queue_commands_work_without_the_secret_and_only_run_and_ping_need_it() {
    let app = TestApp::start().await;
    app.queue().await.close().await;
    drop_secret(&app);
    let feed = app.path().join("f.txt");
    std::fs::write(&feed, "evil.example.com\n").unwrap();
    let feed = feed.to_str().unwrap();
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["retry"],
        vec!["purge", "--delivered-before", "30d"],
        vec!["enqueue", feed],
    ] {
        let out = app.binary(&args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains("secret"), "{args:?}: {}", text(&out));
    }
    let check = app.binary(&["check-config"]).await;
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(
        text(&check).contains("# Secret key: none set"),
        "{}",
        text(&check)
    );
    for args in [vec!["ping"], vec!["run", "--once"]] {
        let out = app.binary(&args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("no secret key"),
            "{args:?}: {}",
            text(&out)
        );
    }
}

#[tokio::test]
async fn the_inline_secret_warning_appears_only_where_the_secret_is_used() {
    let app = TestApp::start().await;
    app.queue().await.close().await;
    for args in [vec!["status"], vec!["check-config"], vec!["retry"]] {
        let out = app.binary(&args).await;
        assert!(
            !text(&out).contains("api.secret_key is set inline"),
            "{args:?}: {}",
            text(&out)
        );
    }
    let out = app.binary(&["ping"]).await;
    assert_eq!(
        text(&out).matches("api.secret_key is set inline").count(),
        1,
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn check_config_output_is_accepted_by_check_config() {
    let app = TestApp::builder()
        .extra_config(
            "[delivery]\nbackoff_base_ms = 250\n[[feeds]]\nmatch = \"*.csv\"\nowner = \"A\"\n",
        )
        .start()
        .await;
    let out = app.binary(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    let again = app.path().join("again.toml");
    std::fs::write(&again, &printed).unwrap();
    let out = command(&["check-config", "--config", again.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{printed}", text(&out));
    let reprinted = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        printed.lines().skip(2).collect::<Vec<_>>(),
        reprinted.lines().skip(2).collect::<Vec<_>>()
    );
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn retention_counts_from_when_a_file_finished_in_done_and_failed() {
    use std::time::SystemTime;
    let app = TestApp::builder()
        .extra_config("[delivery]\nrate_per_second = 0\n")
        .start()
        .await;
    let text = std::fs::read_to_string(app.config_path()).unwrap().replace(
        "rescan_secs = 1",
        "rescan_secs = 1\ndone_retention = \"1h\"",
    );
    std::fs::write(app.config_path(), text).unwrap();
    let mut d = app.daemon().await;
    let cancel = tokio_util::sync::CancellationToken::new();

    // A producer's file with a month-old mtime, renamed in.
    let tmp = app.incoming().join(".old.txt.tmp");
    std::fs::write(&tmp, "old.example.com\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(SystemTime::now() - 30 * DAY)
        .unwrap();
    std::fs::rename(&tmp, app.incoming().join("old.txt")).unwrap();
    // The same broken file twice: two copies in failed/.
    for _ in 0..2 {
        app.drop_file("half.json", b"[\"a.example.com\", \"not valid\", {broken");
        d.intake().scan(&cancel, false).await.unwrap();
    }
    assert_eq!(d.intake().prune().await.unwrap(), 0);
    let done = names(&app.path().join("done"));
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].ends_with("-old.txt"), "{done:?}");
    let failed = names(&app.path().join("failed"));
    assert_eq!(
        failed,
        vec![
            "half-1.json",
            "half-1.json.errors.ndjson",
            "half.json",
            "half.json.errors.ndjson"
        ]
    );
    // One schema for every line of an errors report.
    let report =
        std::fs::read_to_string(app.path().join("failed/half.json.errors.ndjson")).unwrap();
    assert_eq!(report.lines().count(), 2, "{report}");
    for line in report.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["input", "line", "reason", "rule"], "{line}");
    }

    // Finished two hours ago (as the queue records it): all of it goes.
    sql(
        &d.queue,
        "UPDATE files SET finished_at = finished_at - 7200000",
    )
    .await;
    assert_eq!(d.intake().prune().await.unwrap(), 5);
    assert!(names(&app.path().join("done")).is_empty());
    assert!(names(&app.path().join("failed")).is_empty());
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
