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
