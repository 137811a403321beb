//! Operating it day to day (issue 14): queue commands without the secret,
//! a status that tells the truth, `why`, `retry`, retention, `ping`. What
//! it logs and its metrics: `observe.rs`.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn queue_commands_work_without_the_secret_and_only_run_and_ping_need_it() {
    let app = TestApp::start().await;
    app.queue().await.close().await;
    app.drop_secret();
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
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            output_text(&out)
        );
        assert!(
            !output_text(&out).contains("secret"),
            "{args:?}: {}",
            output_text(&out)
        );
    }
    let check = app.binary(&["check-config"]).await;
    assert_contains_all(&exited(&check, 0), &["#   credentials  none set"]);
    for args in [vec!["ping"], vec!["run", "--once"]] {
        let out = app.binary(&args).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            output_text(&out)
        );
        assert!(
            output_text(&out).contains("no credentials"),
            "{args:?}: {}",
            output_text(&out)
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
            !output_text(&out).contains("is set inline in the config file"),
            "{args:?}: {}",
            output_text(&out)
        );
    }
    let out = app.binary(&["ping"]).await;
    assert_eq!(
        output_text(&out)
            .matches("is set inline in the config file")
            .count(),
        1,
        "{}",
        output_text(&out)
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
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    let again = app.path().join("again.toml");
    std::fs::write(&again, &printed).unwrap();
    let out = command(&["check-config", "--config", again.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{printed}",
        output_text(&out)
    );
    let reprinted = String::from_utf8(out.stdout).unwrap();
    // The comments say where values come from (the inline secret is not
    // printed, so the second run reads none): the settings are the same.
    let settings = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(settings(&printed), settings(&reprinted));
}

#[tokio::test]
async fn retention_counts_from_when_a_file_finished_in_done_and_failed() {
    use std::time::SystemTime;
    let app = TestApp::builder().extra_config(UNTHROTTLED).start().await;
    app.set_watch("done_retention = \"1h\"\n");
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

#[tokio::test]
async fn status_says_whether_a_daemon_runs_and_counts_per_file() {
    let app = TestApp::builder().extra_config(UNTHROTTLED).start().await;
    app.queue().await.close().await;
    let fresh = output_text(&app.binary(&["status"]).await);
    assert!(fresh.contains("daemon: NOT RUNNING"), "{fresh}");
    assert!(!fresh.contains("delivery: running"), "{fresh}");

    let daemon = app.spawn_daemon_with_queue().await;
    let pid = daemon.pid();
    wait_until(
        Duration::from_secs(10),
        "status sees the daemon",
        async || app.status_json().await["daemon_running"] == true,
    )
    .await;
    let running = output_text(&app.binary(&["status"]).await);
    assert!(
        running.contains(&format!("daemon: running, pid {pid}")),
        "{running}"
    );
    assert!(running.contains("delivery: running"), "{running}");
    let second = output_text(&app.binary(&["run", "--once"]).await);
    assert_eq!(second.matches("is in use").count(), 1, "{second}");
    app.rename_in(
        "feed.txt",
        b"a.example.com\nb.example.com\nnot an indicator\n",
    );
    wait_until(Duration::from_secs(20), "the file delivered", async || {
        let v = app.status_json().await;
        v["recent_files"][0]["delivered"] == 2
    })
    .await;
    let v = app.status_json().await;
    let f = &v["recent_files"][0];
    assert_eq!(
        (
            &f["path"],
            &f["rows_read"],
            &f["rows_queued"],
            &f["rows_rejected"],
            &f["dead"]
        ),
        (
            &"feed.txt".into(),
            &3.into(),
            &2.into(),
            &1.into(),
            &0.into()
        ),
        "{v}"
    );
    let (code, _) = daemon.stop().await;
    assert_eq!(code, Some(0));

    let stopped = output_text(&app.binary(&["status"]).await);
    assert!(stopped.contains("daemon: NOT RUNNING"), "{stopped}");
    assert!(stopped.contains("delivery: stopped"), "{stopped}");
    let v = app.status_json().await;
    assert_eq!(v["daemon_running"], false);
    assert_eq!(v["delivery"], "stopped");
}

#[tokio::test]
async fn status_watch_redraws_with_rates_and_backlog() {
    let app = TestApp::start().await;
    app.enqueue_file("w.txt", "w.example.com\n").await;
    let out = app
        .binary(&["status", "--watch", "--count", "2", "--interval", "50ms"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(s.matches("tc-ingest status --watch").count(), 2, "{s}");
    assert_contains_all(
        &s,
        &[
            "rates:    delivered 0.0/s",
            "backlog:  1 jobs (pending 1",
            "holds:    none",
            "daemon: NOT RUNNING",
        ],
    );
}

#[tokio::test]
async fn why_tells_where_a_value_came_from_its_state_and_what_to_do() {
    let app = TestApp::builder()
        .extra_config("[[feeds]]\nmatch = \"list*.txt\"\nowner = \"Exemplary Organization\"\n")
        .start()
        .await;
    app.enqueue_file(
        "list1.txt",
        "# comment\nhxxp://evil[.]example[.]com/x\n1.2.3\nok.example.com\n",
    )
    .await;
    let q = app.queue().await;
    sql(
        &q,
        "UPDATE jobs SET state = 'dead', attempts = 1, last_error_class = 'validation', \
         last_http_status = 400, last_error = 'Please enter a valid URL' \
         WHERE value = 'http://evil.example.com/x'",
    )
    .await;
    q.close().await;

    let by_value = output_text(&app.binary(&["why", "hxxp://evil[.]example[.]com/x"]).await);
    assert_contains_all(
        &by_value,
        &[
            "normalizes to URL \"http://evil.example.com/x\"",
            "owner \"Exemplary Organization\"",
            "list1.txt line 2",
            "feed rule feeds[0] (match \"list*.txt\")",
            "dead",
            "validation (HTTP 400): Please enter a valid URL",
            "tc-ingest retry --class validation --file list1.txt",
        ],
    );
    let id = by_value
        .split("job ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap()
        .to_string();
    let by_id = output_text(&app.binary(&["why", &id]).await);
    assert!(by_id.contains("list1.txt line 2"), "{by_id}");
    let rejected = output_text(&app.binary(&["why", "list1.txt:3"]).await);
    assert_contains_all(
        &rejected,
        &[
            "rejected row",
            "\"1.2.3\"",
            "cannot-determine-type",
            "never queued",
        ],
    );
    let pending = output_text(&app.binary(&["why", "OK.example.com"]).await);
    assert!(pending.contains("pending"), "{pending}");
    let out = app.binary(&["why", "nothing.example.org"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
}

#[tokio::test]
async fn retry_checks_its_arguments_matches_files_exactly_and_can_dry_run() {
    let app = TestApp::start().await;
    app.enqueue_file("a_b.txt", "one.example.com\n").await;
    app.enqueue_file("axb.txt", "two.example.com\n").await;
    let q = app.queue().await;
    sql(
        &q,
        "UPDATE jobs SET state = 'dead', last_error_class = 'validation', last_error = 'x'",
    )
    .await;
    let unknown_class = app.binary(&["retry", "--class", "bogus"]).await;
    assert_eq!(unknown_class.status.code(), Some(2));
    assert_contains_all(&output_text(&unknown_class), &["validation"]);
    let unknown_file = app.binary(&["retry", "--file", "nosuch.csv"]).await;
    assert_eq!(
        unknown_file.status.code(),
        Some(2),
        "{}",
        output_text(&unknown_file)
    );
    let dry = app
        .binary(&["retry", "--file", "a_b.txt", "--dry-run"])
        .await;
    assert_contains_all(
        &exited(&dry, 0),
        &["would requeue 1 buried job(s): validation 1"],
    );
    assert_eq!(
        q.count(Some(tc_ingest::queue::JobState::Dead))
            .await
            .unwrap(),
        2
    );
    let done = app.binary(&["retry", "--file", "a_b.txt"]).await;
    assert_contains_all(&output_text(&done), &["requeued 1"]);
    assert_eq!(
        q.count(Some(tc_ingest::queue::JobState::Dead))
            .await
            .unwrap(),
        1
    );
    let purge = app
        .binary(&["purge", "--delivered-before", "1s", "--dry-run"])
        .await;
    assert_contains_all(&output_text(&purge), &["would delete 0 delivered job(s)"]);
    q.close().await;
}

#[tokio::test]
async fn run_once_reports_what_this_run_delivered() {
    let app = TestApp::builder().extra_config(UNTHROTTLED).start().await;
    std::fs::create_dir_all(app.incoming()).unwrap();
    app.rename_in(
        "first.txt",
        b"a.example.com\nb.example.com\nc.example.com\n",
    );
    let out = app.binary(&["run", "--once"]).await;
    assert_contains_all(&output_text(&out), &["delivered=3"]);
    app.rename_in("second.txt", b"d.example.com\n");
    let out = app.binary(&["run", "--once"]).await;
    assert_contains_all(&exited(&out, 0), &["delivered=1"]);
}

#[tokio::test]
async fn ping_checks_every_feed_rule_owner_and_hints_at_the_api_base_path() {
    let app = TestApp::builder()
        .extra_config("[[feeds]]\nmatch = \"*.csv\"\nowner = \"Nobody Org\"\n")
        .start()
        .await;
    let out = app.binary(&["ping"]).await;
    assert_contains_all(
        &exited(&out, 1),
        &["feeds[0].owner \"Nobody Org\" is not among them"],
    );

    // An on-premise style instance (/api) configured without /api.
    let app = TestApp::builder().base_path("/api").start().await;
    app.edit_config(|cfg| cfg.replace("/api\"", "\""));
    let out = app.binary(&["ping"]).await;
    assert_contains_all(&exited(&out, 2), &["need /api at the end of api.base_url"]);
}

#[tokio::test]
async fn normalize_with_config_applies_the_feed_rules() {
    let app = TestApp::builder()
        .extra_config(
            "[[feeds]]\nmatch = \"*.csv\"\nowner = \"Exemplary Organization\"\ntype = \"host\"\n\
             tags = [\"rule\"]\ncolumns = { value = \"thing\" }\n",
        )
        .start()
        .await;
    let feed = app.path().join("mapped.csv");
    std::fs::write(&feed, "thing,note\nevil.example.com,x\n").unwrap();
    let without = command(&["normalize", feed.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_contains_all(&output_text(&without), &["0 accepted"]);
    let with = app.binary(&["normalize", feed.to_str().unwrap()]).await;
    assert_eq!(with.status.code(), Some(0), "{}", output_text(&with));
    let row: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&with.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(row["summary"], "evil.example.com");
    assert_eq!(row["type"], "Host");
    assert_eq!(row["owner"], "Exemplary Organization");
    assert_eq!(row["payload"]["tags"][0], "rule");
}
