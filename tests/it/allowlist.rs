//! The allowlist before the queue: built-in ranges and hashes, values,
//! CIDRs, domains, regexes and MISP warninglists; counts per file in
//! `status`, `why`, `normalize`; `purge --allowlisted`; bad entries named.

use crate::helpers::*;

/// The made-up MISP warninglists under `tests/data/warninglists/`.
fn lists() -> String {
    data("warninglists").display().to_string()
}

fn allowlist(extra: &str) -> String {
    format!(
        "{UNTHROTTLED}[allowlist]\nbuiltin = true\nvalues = [\"9.9.9[.]9\"]\ncidrs = [\"23.23.0.0/16\"]\n\
         domains = [\"corp.acme-example.net\"]\nregex = ['^https://intranet\\.']\nmisp_warninglists = [\"{}\"]\n{extra}",
        lists()
    )
}

const FEED: &str = "value\n\
8.8.8.8\n\
10.1.2.3\n\
9.9.9.9\n\
23.23.5.5\n\
d41d8cd98f00b204e9800998ecf8427e\n\
www.google.com\n\
mail.corp.acme-example.net\n\
https://intranet.acme-example.org/login\n\
bad-actor.example-threat.net\n\
45.77.1.2\n";

#[tokio::test]
async fn filtered_rows_are_counted_by_what_matched_and_never_queued() {
    let app = TestApp::builder()
        .extra_config(&allowlist(""))
        .start()
        .await;
    app.drop_file("mixed.csv", FEED.as_bytes());
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    let got: Vec<String> = app.sim.indicators().into_iter().map(|i| i.value).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.contains(&"bad-actor.example-threat.net".to_string())
            && got.contains(&"45.77.1.2".to_string())
    );
    let q = app.queue().await;
    assert_eq!(number(&q, "SELECT rows_filtered FROM files").await, 8);
    for (what, n) in [
        ("List of known public DNS resolvers", 1),
        ("builtin", 2),
        ("values", 1),
        ("cidrs", 1),
        ("Top domains (fixture)", 1),
        ("domains", 1),
        ("regex", 1),
    ] {
        assert_eq!(
            number(
                &q,
                &format!("SELECT count FROM file_filters WHERE what = '{what}'")
            )
            .await,
            n,
            "{what}"
        );
    }
    drop(d);
    let status = output_text(&app.binary(&["status"]).await);
    assert!(status.contains("filtered: 2 by \"builtin\""), "{status}");
    assert!(
        status.contains("1 by \"List of known public DNS resolvers\""),
        "{status}"
    );
    let why = app.binary(&["why", "8.8.8.8"]).await;
    let text = exited(&why, 0);
    assert!(
        text.contains("filtered by the allowlist (\"List of known public DNS resolvers\")"),
        "{text}"
    );
}

#[tokio::test]
async fn normalize_shows_filtered_rows_and_check_config_names_bad_entries() {
    let app = TestApp::builder()
        .extra_config(&allowlist(""))
        .start()
        .await;
    let feed = app.path().join("mixed.csv");
    std::fs::write(&feed, FEED).unwrap();
    let out = app.binary(&["normalize", feed.to_str().unwrap()]).await;
    let text = exited(&out, 0);
    assert!(text.contains(r#""filtered":"builtin""#), "{text}");
    assert!(text.contains("8 filtered by the allowlist"), "{text}");
    // A regex that does not compile, a list that is not JSON, a value
    // that does not normalize: each named; a CIDR with host bits: a warning.
    let broken = app.path().join("broken");
    std::fs::create_dir_all(broken.join("bad")).unwrap();
    std::fs::write(broken.join("bad/list.json"), "{ not json").unwrap();
    app.edit_config(|t| {
        t.replace(
            "regex = ['^https://intranet\\.']",
            "regex = ['^https://intranet\\.', '(']",
        )
        .replace(&lists(), broken.to_str().unwrap())
    });
    let out = app.binary(&["check-config"]).await;
    let text = exited(&out, 2);
    assert_contains_all(
        &text,
        &[
            "allowlist.regex[1]",
            "bad/list.json",
            "not a MISP warninglist",
        ],
    );
    app.edit_config(|t| {
        t.replace(", '(']", "]")
            .replace(broken.to_str().unwrap(), &lists())
            .replace("cidrs = [\"23.23.0.0/16\"]", "cidrs = [\"23.23.7.7/16\"]")
    });
    let out = app.binary(&["check-config"]).await;
    let text = exited(&out, 0);
    assert!(text.contains("23.23.7.7/16"), "{text}");
    assert!(
        text.contains("allowlist:") && text.contains("lists loaded"),
        "{text}"
    );
}

#[tokio::test]
async fn purge_allowlisted_removes_waiting_jobs_the_grown_allowlist_filters() {
    let app = TestApp::builder().start().await;
    app.enqueue_file("early.txt", "8.8.8.8\n1.1.1.1\n45.77.1.2\n")
        .await;
    // The allowlist grows after they were queued.
    app.edit_config(|t| format!("{t}[allowlist]\nmisp_warninglists = [\"{}\"]\n", lists()));
    let dry = app.binary(&["purge", "--allowlisted"]).await;
    let text = exited(&dry, 0);
    assert!(text.contains("would delete 2 waiting job(s)"), "{text}");
    let q = app.queue().await;
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM jobs").await,
        3,
        "a dry run changes nothing"
    );
    let done = app.binary(&["purge", "--allowlisted", "--confirm"]).await;
    let text = exited(&done, 0);
    assert!(
        text.contains("deleted 2 waiting job(s)")
            && text.contains("List of known public DNS resolvers 2"),
        "{text}"
    );
    assert_eq!(
        crate::helpers::text(&q, "SELECT value FROM jobs").await,
        "45.77.1.2"
    );
}

#[tokio::test]
async fn a_reload_with_a_grown_allowlist_filters_the_next_file() {
    let app = TestApp::builder().extra_config(UNTHROTTLED).start().await;
    let mut d = app.daemon().await;
    app.drop_file("a.txt", b"8.8.8.8\n");
    d.once().await;
    assert_eq!(app.sim.indicators().len(), 1);
    app.edit_config(|t| format!("{t}[allowlist]\nvalues = [\"8.8.4.4\"]\n"));
    assert!(d.reload());
    app.drop_file("b.txt", b"8.8.4.4\n45.77.1.2\n");
    d.once().await;
    let got: Vec<String> = app.sim.indicators().into_iter().map(|i| i.value).collect();
    assert_eq!(got, ["8.8.8.8", "45.77.1.2"]);
    // A reload whose allowlist fails keeps the running one.
    app.edit_config(|t| {
        t.replace(
            "values = [\"8.8.4.4\"]",
            "values = [\"8.8.4.4\"]\nregex = ['(']",
        )
    });
    assert!(!d.reload());
    let kept = tc_ingest::indicator::Indicator::from_normalized(
        tc_ingest::indicator::IndicatorType::Address,
        "8.8.4.4".into(),
    );
    assert!(
        d.allowlist_tx.borrow().check(&kept).is_some(),
        "the old allowlist kept"
    );
}
