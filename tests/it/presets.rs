//! Public blocklists in their published shapes (issue 23): each preset's
//! sample (`tests/data/presets/`, made-up values in the feeds' layouts)
//! gives exactly the indicators its `.expected.json` lists, through the
//! rule `preset = "NAME"`; and most read right with no rule at all.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::*;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/presets")
        .join(name)
}

/// Every sample with its expectations.
fn samples() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(sample(""))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let file = name.strip_suffix(".expected.json")?.to_string();
            let expected = serde_json::from_slice(&std::fs::read(sample(&name)).unwrap()).unwrap();
            Some((file, expected))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `normalize` of `file` under `app`'s config: the (type, summary) of each
/// accepted row, sorted, and the summary line.
async fn read_as(app: &TestApp, file: &Path) -> (Vec<(String, String)>, String) {
    let out = app.binary(&["normalize", &file.to_string_lossy()]).await;
    let mut rows: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r.get("summary").is_some())
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_string(),
                r["summary"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    (rows, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn wanted(expected: &Value) -> Vec<(String, String)> {
    let mut want: Vec<(String, String)> = expected["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["type"].as_str().unwrap().to_string(),
                i["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    want.sort();
    want
}

#[tokio::test]
async fn every_preset_reads_its_feed_as_published() {
    let app = TestApp::start().await;
    let base = std::fs::read_to_string(app.config_path()).unwrap();
    for (file, expected) in samples() {
        let preset = expected["preset"].as_str().unwrap();
        std::fs::write(
            app.config_path(),
            format!("{base}\n[[feeds]]\nmatch = \"{file}\"\npreset = \"{preset}\"\n"),
        )
        .unwrap();
        let (rows, summary) = read_as(&app, &sample(&file)).await;
        assert_eq!(rows, wanted(&expected), "{file} ({preset}): {summary}");
        let rejected = expected["rejected"].as_array().map_or(0, Vec::len);
        assert!(
            summary.contains(&format!("{rejected} rejected")),
            "{file} ({preset}): {summary}"
        );
    }
}

#[tokio::test]
async fn most_published_shapes_read_right_with_no_rule() {
    let app = TestApp::start().await;
    for (file, expected) in samples() {
        // These need their preset: no header (Bambenek), record lines
        // (Tor), an AS number column by name (ASN-DROP JSON).
        if file.starts_with("bambenek")
            || file == "tor-exit-addresses.txt"
            || file == "asndrop.json"
        {
            continue;
        }
        let (rows, summary) = read_as(&app, &sample(&file)).await;
        assert_eq!(rows, wanted(&expected), "{file} with no rule: {summary}");
    }
}

#[tokio::test]
async fn presets_are_listed_with_where_they_are_published_and_an_unknown_one_is_refused() {
    let out = command(&["presets"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for name in [
        "spamhaus-drop",
        "dshield-block",
        "threatfox-csv",
        "tor-exit-nodes",
    ] {
        assert!(
            text.contains(&format!("\n{name}\n  published at: https://")),
            "{text}"
        );
    }
    let app = TestApp::start().await;
    let base = std::fs::read_to_string(app.config_path()).unwrap();
    std::fs::write(
        app.config_path(),
        format!("{base}\n[[feeds]]\nmatch = \"*\"\npreset = \"spamhaus-dorp\"\n"),
    )
    .unwrap();
    let out = app.binary(&["check-config"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("feeds[0].preset: unknown preset \"spamhaus-dorp\"; known: spamhaus-drop"),
        "{err}"
    );
}

#[tokio::test]
async fn a_preset_feed_dropped_into_the_daemon_is_delivered_with_its_tags() {
    let app = TestApp::builder()
        .extra_config(&format!(
            "{QUICK_DELIVERY}mode = \"v3\"\n[[feeds]]\ndir = \"spamhaus\"\npreset = \"spamhaus-drop\"\nowner = \"Exemplary Organization\"\n"
        ))
        .start()
        .await;
    app.drop_file(
        "spamhaus/drop.txt",
        &std::fs::read(sample("spamhaus-drop.txt")).unwrap(),
    );
    app.run_once_exits(0).await;
    let held = app.sim.indicators();
    let expected = wanted(
        &serde_json::from_slice(&std::fs::read(sample("spamhaus-drop.txt.expected.json")).unwrap())
            .unwrap(),
    );
    assert_eq!(held.len(), expected.len(), "{held:#?}");
    for ind in &held {
        assert_eq!(
            (ind.kind.as_str(), ind.owner.as_str()),
            ("CIDR", "Exemplary Organization")
        );
        // The feed's name and the row's SBL id.
        assert!(ind.tags.contains("spamhaus-drop"), "{ind:?}");
        assert!(ind.tags.iter().any(|t| t.starts_with("SBL")), "{ind:?}");
    }
}
