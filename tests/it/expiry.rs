//! Expiry against the simulator: what a source withdrew (a revoked STIX
//! indicator, a deleted MISP attribute) or let expire (`valid_until`) is
//! retired once; `max_age`; a named feed without a file within
//! `stale_after` is STALE.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::helpers::*;
use crate::lifecycle::{addresses, config, held, inactive, list};

/// Two STIX indicators: one revoked or not, one valid until `until`.
fn bundle(revoked: bool, modified: &str, until: &impl std::fmt::Display) -> String {
    format!(
        r#"{{"type": "bundle", "id": "bundle--1", "objects": [
        {{"type": "indicator", "spec_version": "2.1", "id": "indicator--11111111-1111-4111-8111-111111111111",
          "created": "2026-01-01T00:00:00Z", "modified": "{modified}", "revoked": {revoked},
          "pattern": "[ipv4-addr:value = '45.9.9.1']", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"}},
        {{"type": "indicator", "spec_version": "2.1", "id": "indicator--22222222-2222-4222-8222-222222222222",
          "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
          "pattern": "[domain-name:value = 'soon-gone.example-threat.net']", "pattern_type": "stix",
          "valid_from": "2026-01-01T00:00:00Z", "valid_until": "{until}"}}]}}"#
    )
}

/// A MISP event with one attribute, deleted or not.
fn misp_event(deleted: bool) -> String {
    format!(
        r#"{{"Event": {{"info": "test", "uuid": "5f0a1111-0000-4000-8000-000000000001", "Attribute": [
        {{"type": "ip-dst", "value": "45.9.9.2", "to_ids": true, "deleted": {deleted},
          "uuid": "5f0a1111-0000-4000-8000-0000000000aa", "timestamp": "1700000000"}}]}}}}"#
    )
}

/// A STIX indicator revoked by a later version, and a MISP attribute that
/// comes back deleted, retire what they gave; `valid_until` retires at
/// that time, and is sent as `externalDateExpires`.
#[tokio::test]
async fn withdrawn_and_expiring_objects_retire_what_they_gave() {
    let app = TestApp::builder()
        .extra_config(&config("v3", ""))
        .start()
        .await;
    // Far enough ahead that the runs before the sweep below never reach it.
    let until_at = std::time::SystemTime::now() + Duration::from_secs(10);
    let until = humantime::format_rfc3339_seconds(until_at);
    app.drop_file(
        "stix-1.json",
        bundle(false, "2026-01-01T00:00:00Z", &until).as_bytes(),
    );
    app.drop_file("misp-1.json", misp_event(false).as_bytes());
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    let now = held(&app);
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(now.values().all(|(active, _, _)| *active));
    let soon = app
        .sim
        .indicators()
        .into_iter()
        .find(|i| i.value == "soon-gone.example-threat.net")
        .unwrap();
    assert_eq!(
        soon.external_date_expires.as_deref(),
        Some(&*until.to_string())
    );

    app.drop_file(
        "stix-2.json",
        bundle(true, "2026-02-01T00:00:00Z", &until).as_bytes(),
    );
    app.drop_file("misp-2.json", misp_event(true).as_bytes());
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(
        inactive(&app),
        BTreeSet::from(["45.9.9.1".to_string(), "45.9.9.2".to_string()])
    );
    // The source keeps listing them withdrawn: retired once only.
    app.drop_file(
        "misp-3.json",
        misp_event(true).replace("\"test\"", "\"again\"").as_bytes(),
    );
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(
        number(
            &app.queue().await,
            "SELECT COUNT(*) FROM jobs WHERE action = 'deactivate'"
        )
        .await,
        2
    );
    assert!(!inactive(&app).contains("soon-gone.example-threat.net"));
    // valid_until passes: the next sweep retires it.
    let left = until_at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(1500)).await;
    assert_eq!(d.once().await.exit_code(), 0);
    assert!(inactive(&app).contains("soon-gone.example-threat.net"));
    let q = app.queue().await;
    assert_eq!(number(&q, "SELECT COUNT(*) FROM expiries").await, 0);
    assert_eq!(
        number(
            &q,
            "SELECT COUNT(*) FROM retired WHERE reason = 'withdrawn'"
        )
        .await,
        2
    );
}

/// `max_age`: what no file of the feed listed within it is retired, by a
/// sweep that repeats nothing.
#[tokio::test]
async fn max_age_retires_what_the_feed_stopped_listing() {
    // Seconds apart, so that a slow run of a few seconds changes nothing.
    let rule = "[[feeds]]\ndir = \"aging\"\nname = \"aging\"\nmax_age = \"6s\"\n";
    let app = TestApp::builder()
        .extra_config(&config("v3", rule))
        .start()
        .await;
    let a = addresses(0, 3);
    app.drop_file("aging/1.txt", &list(&a));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    // An append-only feed (no snapshot) lists a[0] again.
    app.drop_file("aging/2.txt", &list(&a[..1]));
    assert_eq!(d.once().await.exit_code(), 0);
    assert!(inactive(&app).is_empty());
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert_eq!(d.once().await.exit_code(), 0);
    let expected: BTreeSet<String> = a[1..].iter().cloned().collect();
    assert_eq!(inactive(&app), expected);
    tokio::time::sleep(Duration::from_millis(7000)).await;
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(inactive(&app).len(), 3, "a[0] aged out in turn");
    let q = app.queue().await;
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM jobs WHERE action = 'deactivate'").await,
        3,
        "each retired once"
    );
}

#[tokio::test]
async fn a_feed_without_a_file_within_stale_after_is_stale() {
    let rule = "[[feeds]]\ndir = \"quiet\"\nname = \"quiet\"\nstale_after = \"1s\"\n\
                [[feeds]]\ndir = \"busy\"\nname = \"busy\"\nstale_after = \"1h\"\n";
    let app = TestApp::builder()
        .extra_config(&config("v3", rule))
        .start()
        .await;
    app.drop_file("busy/1.txt", &list(&addresses(0, 1)));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    drop(d);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let json: serde_json::Value =
        serde_json::from_str(&output_text(&app.binary(&["status", "--json"]).await)).unwrap();
    let health: Vec<(String, String)> = json["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["health"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    assert_eq!(
        health,
        vec![
            ("busy".to_string(), "ok".to_string()),
            ("quiet".to_string(), "stale".to_string())
        ]
    );
    let table = output_text(&app.binary(&["status"]).await);
    assert!(table.contains("STALE"), "{table}");
    // The daemon says it once, at its first look.
    let daemon = app.spawn_daemon_running().await;
    wait_until(
        Duration::from_secs(20),
        "the daemon says the feed is stale",
        async || daemon.stderr().contains("feed STALE"),
    )
    .await;
    let (_, log) = daemon.stop().await;
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("feed STALE")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("quiet"), "{log}");
}
