//! Threat-intel formats (issue 22): STIX 2.1 bundles and MISP events, from
//! files written outside the project (OASIS's examples, the `stix2` and
//! PyMISP libraries: `tests/fixtures/`), delivered with their TLP markings
//! as security labels in every mode.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tc_ingest::sim::{Faults, SimIndicator};

use crate::helpers::*;

/// A fixture file under `tests/fixtures/`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The expectations `tests/fixtures/generate.py` wrote beside a file.
fn expected(name: &str) -> Value {
    let path = fixture(&format!("{name}.expected.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The accepted rows `tc-ingest normalize <file>` prints, and its summary
/// line.
async fn normalized(app: &TestApp, file: &Path, extra: &[&str]) -> (Vec<Value>, String) {
    let path = file.to_string_lossy().into_owned();
    let mut args = vec!["normalize", path.as_str()];
    args.extend_from_slice(extra);
    let out = app.binary(&args).await;
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r.get("summary").is_some())
        .collect();
    (rows, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// An app delivering in `mode` with fast batch polls.
async fn app_in(mode: &str, faults: Faults, extra: &str) -> TestApp {
    TestApp::builder()
        .faults(faults)
        .extra_config(&format!(
            "{QUICK_DELIVERY}mode = \"{mode}\"\n[batch]\npoll_min_ms = 20\npoll_max_ms = 200\nmin_indicators = 1\n{extra}"
        ))
        .start()
        .await
}

/// The held indicator of type `kind` whose summary is `value` as a source
/// wrote it.
fn held<'a>(all: &'a [SimIndicator], kind: &str, value: &str) -> Option<&'a SimIndicator> {
    let value = value.to_ascii_lowercase();
    // An ASN as ThreatConnect writes it, whatever the source wrote.
    let asn = |v: &str| {
        v.to_ascii_uppercase()
            .trim_start_matches("AS")
            .trim_start_matches('N')
            .to_string()
    };
    // A File by any of its hashes, a Registry Key by its key.
    let first = value.split(" : ").next().unwrap_or_default().to_string();
    all.iter().find(|i| {
        i.kind == kind
            && (i.value.eq_ignore_ascii_case(&value)
                || (kind == "File" && i.value.split(" : ").any(|h| h == first))
                || (kind == "Registry Key"
                    && i.value
                        .split(" : ")
                        .next()
                        .unwrap_or_default()
                        .eq_ignore_ascii_case(&first))
                || (kind == "ASN" && asn(&i.value) == asn(&value))
                || (matches!(kind, "Address" | "CIDR") && same_network(&i.value, &value)))
    })
}

/// Two addresses or networks, however an IPv6 one is written.
fn same_network(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (addr, len) = s.split_once('/').unwrap_or((s, ""));
        addr.parse::<std::net::IpAddr>()
            .ok()
            .map(|a| (a, len.to_string()))
    };
    parse(a).is_some_and(|x| Some(x) == parse(b))
}

/// Every indicator `expected` lists is held with its labels.
fn check_held(all: &[SimIndicator], expected: &Value, what: &str) {
    for e in expected["indicators"].as_array().unwrap() {
        let (kind, value) = (e["type"].as_str().unwrap(), e["value"].as_str().unwrap());
        let ind = held(all, kind, value)
            .unwrap_or_else(|| panic!("{what}: {kind} {value} not delivered: {all:#?}"));
        let labels: BTreeSet<String> = e["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        assert_eq!(ind.security_labels, labels, "{what}: {kind} {value}");
    }
}

#[tokio::test]
async fn a_misp_event_is_delivered_with_its_labels_in_every_mode() {
    let want = expected("misp/pymisp-event.json");
    for mode in ["v2", "v3", "batch"] {
        let app = app_in(mode, faults(), "").await;
        app.drop_file(
            "event.json",
            &std::fs::read(fixture("misp/pymisp-event.json")).unwrap(),
        );
        // Two attributes are rejected before the queue: every queued job
        // is delivered (exit 0).
        app.run_once_exits(0).await;
        let all = app.sim.indicators();
        check_held(&all, &want, mode);
        // The file object's md5 and sha256 are one File; the 28 expected
        // values are 27 indicators.
        assert_eq!(all.len(), 27, "{mode}: {all:#?}");
        let file = held(&all, "File", "1af98e60e9165dbf0ddc49d657e3ab78").unwrap();
        assert_eq!(file.value.split(" : ").count(), 2, "{file:?}");
        // The event's creator is the Source; the comment (else the event's
        // info) the Description.
        let ip = held(&all, "Address", "203.0.113.10").unwrap();
        let kinds: Vec<&str> = ip.attributes.iter().map(|a| a.kind.as_str()).collect();
        assert!(
            kinds.contains(&"Source") && kinds.contains(&"Description"),
            "{ip:?}"
        );
        let q = app.queue().await;
        assert_eq!(
            number(&q, "SELECT rows_skipped FROM files").await,
            10,
            "{mode}"
        );
        assert_eq!(
            number(
                &q,
                "SELECT count FROM file_skips WHERE what = 'not-for-detection'"
            )
            .await,
            7
        );
        assert_eq!(
            number(&q, "SELECT COUNT(*) FROM rejects WHERE rule IN ('url-without-scheme', 'invalid-registry-hive')").await,
            2
        );
        assert_eq!(
            number(&q, "SELECT COUNT(*) FROM external_ids").await,
            27,
            "{mode}"
        );
        let status = app.binary(&["status"]).await;
        let status = String::from_utf8_lossy(&status.stdout);
        assert!(
            status.contains("skipped: 7 x not-for-detection, 1 x deleted"),
            "{status}"
        );
    }
}

#[tokio::test]
async fn every_misp_form_reads_the_same_attributes_and_a_feed_index_is_skipped() {
    let app = TestApp::start().await;
    let (wrapped, _) = normalized(&app, &fixture("misp/pymisp-event.json"), &[]).await;
    let (bare, summary) = normalized(&app, &fixture("misp/pymisp-bare-event.json"), &[]).await;
    let summaries =
        |rows: &[Value]| -> Vec<String> { rows.iter().map(|r| r["summary"].to_string()).collect() };
    assert_eq!(summaries(&wrapped), summaries(&bare));
    assert!(summary.contains("10 skipped"), "{summary}");
    for name in ["misp/restsearch-response.json", "misp/event-list.json"] {
        let want = expected(name);
        let (rows, _) = normalized(&app, &fixture(name), &[]).await;
        assert_eq!(
            rows.len(),
            want["indicators"].as_array().unwrap().len(),
            "{name}"
        );
    }
    for index in ["manifest.json", "hashes.csv"] {
        let (rows, summary) = normalized(&app, &fixture(&format!("misp/feed/{index}")), &[]).await;
        assert!(rows.is_empty(), "{index}: {rows:?}");
        assert!(summary.contains("misp-feed-index 1"), "{index}: {summary}");
    }
    // `misp_all_attributes`: what is not for detection too.
    std::fs::write(
        app.config_path(),
        format!(
            "{}\n[[feeds]]\nmatch = \"*.json\"\nmisp_all_attributes = true\n",
            std::fs::read_to_string(app.config_path()).unwrap()
        ),
    )
    .unwrap();
    let (all, summary) = normalized(&app, &fixture("misp/pymisp-event.json"), &[]).await;
    assert!(
        all.len() > wrapped.len(),
        "{} vs {}: {summary}",
        all.len(),
        wrapped.len()
    );
}

#[tokio::test]
async fn a_label_the_instance_lacks_is_left_out_and_the_indicator_delivered() {
    for mode in ["v2", "v3", "batch"] {
        let lacking = Faults {
            missing_security_labels: vec!["TLP:GREEN".into()],
            ..faults()
        };
        let app = app_in(mode, lacking, "").await;
        app.drop_file(
            "events.json",
            &std::fs::read(fixture("misp/restsearch-response.json")).unwrap(),
        );
        let stderr = app.run_once_exits(0).await;
        let all = app.sim.indicators();
        assert_eq!(all.len(), 7, "{mode}: {all:#?}");
        assert!(
            all.iter().all(|i| !i.security_labels.contains("TLP:GREEN")),
            "{mode}: {all:#?}"
        );
        assert!(
            stderr.contains("no security label of this name"),
            "{mode}: {stderr}"
        );
        let q = app.queue().await;
        assert_eq!(
            number(&q, "SELECT COUNT(*) FROM jobs WHERE state != 'delivered'").await,
            0,
            "{mode}"
        );
    }
}

#[tokio::test]
async fn a_label_refused_when_the_list_cannot_be_read_is_dropped_and_delivery_goes_on() {
    for mode in ["v2", "v3", "batch"] {
        let unlisted = Faults {
            missing_security_labels: vec!["TLP:GREEN".into()],
            security_labels_unlisted: true,
            ..faults()
        };
        let app = app_in(mode, unlisted, "").await;
        app.drop_file(
            "events.json",
            &std::fs::read(fixture("misp/restsearch-response.json")).unwrap(),
        );
        app.run_once_exits(0).await;
        let all = app.sim.indicators();
        assert_eq!(all.len(), 7, "{mode}: {all:#?}");
        let q = app.queue().await;
        assert_eq!(
            number(&q, "SELECT COUNT(*) FROM jobs WHERE state != 'delivered'").await,
            0,
            "{mode}"
        );
    }
}

#[tokio::test]
async fn a_feed_rule_names_labels_and_the_instance_names_the_levels() {
    let app = app_in(
        "v3",
        faults(),
        "[security_labels]\namber = \"TLP:AMBER\"\nclear = \"TLP:WHITE\"\n\
         [[feeds]]\nmatch = \"*.csv\"\nsecurity_labels = [\"tlp:clear\"]\n",
    )
    .await;
    app.drop_file("plain.csv", b"indicator\nlabelled.example.org\n");
    app.drop_file("own.csv", b"indicator,tlp\nown.example.org,amber\n");
    app.run_once_exits(0).await;
    let all = app.sim.indicators();
    let labels = |v: &str| held(&all, "Host", v).unwrap().security_labels.clone();
    assert_eq!(
        labels("labelled.example.org"),
        BTreeSet::from(["TLP:WHITE".to_string()])
    );
    assert_eq!(
        labels("own.example.org"),
        BTreeSet::from(["TLP:AMBER".to_string()])
    );
    let why = app.binary(&["why", "own.example.org"]).await;
    let text = String::from_utf8_lossy(&why.stdout);
    assert!(text.contains("TLP:AMBER"), "{text}");
}

#[tokio::test]
async fn a_stix_bundle_is_delivered_with_its_markings_in_every_mode() {
    let want = expected("stix/stix2-library.json");
    for mode in ["v2", "v3", "batch"] {
        let app = app_in(mode, faults(), "").await;
        // Named as nothing in particular: told by its content.
        app.drop_file(
            "bundle.dat",
            &std::fs::read(fixture("stix/stix2-library.json")).unwrap(),
        );
        app.run_once_exits(0).await;
        let all = app.sim.indicators();
        check_held(&all, &want, mode);
        assert_eq!(all.len(), 23, "{mode}: {all:#?}");
        // Confidence, labels and indicator_types as tags, the creator's
        // name as Source, the description (else the name).
        let ip = held(&all, "Address", "203.0.113.10").unwrap();
        assert_eq!(ip.confidence, Some(80), "{mode}");
        assert!(
            ["c2", "apt-test", "malicious-activity"]
                .iter()
                .all(|t| ip.tags.contains(*t)),
            "{mode}: {ip:?}"
        );
        let attribute = |kind: &str| {
            ip.attributes
                .iter()
                .find(|a| a.kind == kind)
                .map(|a| a.value.clone())
        };
        assert_eq!(attribute("Source").as_deref(), Some("ACME CERT"), "{mode}");
        assert_eq!(
            attribute("Description").as_deref(),
            Some("C2 address (name only)"),
            "{mode}"
        );
        if mode != "v2" {
            assert!(ip.external_last_modified.is_some(), "{mode}: {ip:?}");
        }
        let q = app.queue().await;
        for (rule, n) in [("stix-unsupported", 6), ("stix-pattern-type", 2)] {
            assert_eq!(
                number(
                    &q,
                    &format!("SELECT COUNT(*) FROM rejects WHERE rule = '{rule}'")
                )
                .await,
                n,
                "{mode}: {rule}"
            );
        }
        for (what, n) in [
            ("expired", 1),
            ("revoked", 1),
            ("stix malware", 1),
            ("stix ipv4-addr", 1),
        ] {
            assert_eq!(
                number(
                    &q,
                    &format!("SELECT count FROM file_skips WHERE what = '{what}'")
                )
                .await,
                n,
                "{mode}: {what}"
            );
        }
        // A reject names the object and the construct.
        let reason = text(
            &q,
            "SELECT reason FROM rejects WHERE input = 'indicator--36ce9ba6-b006-46db-865c-8702b2a5efa7'",
        )
        .await;
        assert!(reason.contains("LIKE"), "{reason}");
    }
}

#[tokio::test]
async fn stix_objects_one_a_line_the_oasis_examples_and_observables_read_as_expected() {
    let app = TestApp::start().await;
    let (rows, summary) = normalized(&app, &fixture("stix/stix2-library.ndjson"), &[]).await;
    assert_eq!(rows.len(), 23, "{summary}");
    // The OASIS examples, as `tests/fixtures/stix/oasis.expected.md` counts them.
    for (file, accepted, rejected) in [
        ("apt1.json", 10, "stix-unsupported 2"),
        ("poisonivy.json", 64, "invalid-host 1, stix-unsupported 2"),
        ("indicators-for-C2-with-COA.json", 2, "none"),
        ("indicator-to-campaign-relationship.json", 1, "none"),
        ("indicator-for-c2-ip-address.json", 1, "none"),
        (
            "malicious-email-indicator-with-attachment.json",
            0,
            "stix-unsupported 2",
        ),
    ] {
        let (rows, summary) = normalized(&app, &fixture(&format!("stix/oasis/{file}")), &[]).await;
        assert_eq!(rows.len(), accepted, "{file}: {summary}");
        assert!(
            summary.contains(&format!("rejected ({rejected})")),
            "{file}: {summary}"
        );
    }
    // Lower-case hash names (apt1.json) are hashes all the same.
    let (rows, _) = normalized(&app, &fixture("stix/oasis/apt1.json"), &[]).await;
    assert!(
        rows.iter()
            .any(|r| r["summary"] == "001dd76872d80801692ff942308c64e6")
    );
    // Observables with the rule's switch, and a rule forcing the format on
    // a file named otherwise.
    std::fs::write(
        app.config_path(),
        format!(
            "{}\n[[feeds]]\nmatch = \"*.txt\"\nformat = \"stix\"\nstix_observables = true\n",
            std::fs::read_to_string(app.config_path()).unwrap()
        ),
    )
    .unwrap();
    let renamed = app.path().join("objects.txt");
    std::fs::copy(fixture("stix/stix2-library.ndjson"), &renamed).unwrap();
    let (rows, summary) = normalized(&app, &renamed, &[]).await;
    assert_eq!(rows.len(), 27, "{summary}");
}

/// `object` of `file` (a bundle) with `modified` and `description` set.
fn version_of(file: &str, id: &str, modified: &str, description: &str) -> Vec<u8> {
    let bundle: Value = serde_json::from_slice(&std::fs::read(fixture(file)).unwrap()).unwrap();
    let mut objects: Vec<Value> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] != "indicator" || o["id"] == id)
        .cloned()
        .collect();
    let o = objects.iter_mut().find(|o| o["id"] == id).unwrap();
    o["modified"] = modified.into();
    o["description"] = description.into();
    serde_json::to_vec(
        &serde_json::json!({"type": "bundle", "id": "bundle--9", "objects": objects}),
    )
    .unwrap()
}

#[tokio::test]
async fn a_newer_version_of_an_object_updates_its_indicator_and_an_older_one_is_dropped() {
    let app = app_in("v3", faults(), "").await;
    app.drop_file(
        "octi.json",
        &std::fs::read(fixture("stix/opencti-style.json")).unwrap(),
    );
    app.run_once_exits(0).await;
    let all = app.sim.indicators();
    check_held(&all, &expected("stix/opencti-style.json"), "octi");
    assert_eq!(all.len(), 4);
    let id = "indicator--3a5e8133-dca7-4be4-b66e-3c5b79ab4592";
    let q = app.queue().await;
    // The second, older version in the file was dropped.
    assert_eq!(number(&q, "SELECT rows_duplicate FROM files").await, 1);
    let newest = format!("SELECT modified FROM external_ids WHERE external_id = '{id}'");
    assert_eq!(text(&q, &newest).await, "2024-03-05T09:30:00Z");
    // A later version: an update of the same indicator.
    app.drop_file(
        "v3.json",
        &version_of(
            "stix/opencti-style.json",
            id,
            "2024-04-01T00:00:00.000Z",
            "third",
        ),
    );
    // The same version again, and an older one: nothing to send.
    app.drop_file(
        "v3-again.json",
        &version_of(
            "stix/opencti-style.json",
            id,
            "2024-04-01T00:00:00.000Z",
            "third",
        ),
    );
    app.drop_file(
        "v0.json",
        &version_of(
            "stix/opencti-style.json",
            id,
            "2023-01-01T00:00:00.000Z",
            "zeroth",
        ),
    );
    app.run_once_exits(0).await;
    let all = app.sim.indicators();
    assert_eq!(all.len(), 4);
    let ip = held(&all, "Address", "203.0.113.80").unwrap();
    assert_eq!(ip.create_count, 2, "{ip:?}");
    assert_eq!(
        ip.external_last_modified.as_deref(),
        Some("2024-04-01T00:00:00Z"),
        "{ip:?}"
    );
    assert!(ip.attributes.iter().any(|a| a.value == "third"), "{ip:?}");
    assert!(!ip.attributes.iter().any(|a| a.value == "zeroth"), "{ip:?}");
    assert_eq!(text(&q, &newest).await, "2024-04-01T00:00:00Z");
}

#[tokio::test]
async fn a_pattern_nested_past_the_parsers_depth_and_a_gzipped_bundle_named_anyhow() {
    let app = TestApp::start().await;
    let deep = format!(
        "{{\"type\":\"bundle\",\"id\":\"bundle--1\",\"objects\":[\
         {{\"type\":\"indicator\",\"id\":\"indicator--deep\",\"pattern_type\":\"stix\",\"pattern\":\"{}[ipv4-addr:value = '198.51.100.9']{}\"}},\
         {{\"type\":\"indicator\",\"id\":\"indicator--ok\",\"pattern_type\":\"stix\",\"pattern\":\"[ipv4-addr:value = '198.51.100.10']\"}}]}}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let path = app.path().join("deep.json");
    std::fs::write(&path, &deep).unwrap();
    let (rows, summary) = normalized(&app, &path, &[]).await;
    assert_eq!(rows.len(), 1, "{summary}");
    assert!(summary.contains("stix-invalid 1"), "{summary}");
    // Gzipped, named .txt: a bundle all the same.
    let gz = app.path().join("bundle.txt");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(
        &mut enc,
        &std::fs::read(fixture("stix/stix2-library.json")).unwrap(),
    )
    .unwrap();
    enc.finish().unwrap();
    let (rows, summary) = normalized(&app, &gz, &[]).await;
    assert_eq!(rows.len(), 23, "{summary}");
}
