//! Readers never panic and always account for what they read, whatever the bytes.

use std::ops::ControlFlow;

use proptest::prelude::*;

use super::*;

fn read_bytes(bytes: &[u8], format: Format) -> (Vec<u64>, Result<Format, FeedError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed");
    std::fs::write(&path, bytes).unwrap();
    let opts = ReadOptions {
        format: Some(format),
        max_line_bytes: 256,
        ..ReadOptions::default()
    };
    let mut positions = Vec::new();
    let result = read(&path, &opts, &mut |item| {
        positions.push(item.position());
        ControlFlow::Continue(())
    });
    (positions, result)
}

fn feedish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        "[\\[\\]{}\",:; \\n\\r\\tA-Za-z0-9.#@/\\\\-]{0,400}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_bytes_in_any_format_never_panic_and_positions_increase(bytes in feedish()) {
        for format in [Format::Csv, Format::Tsv, Format::Json, Format::Ndjson, Format::Text] {
            let (positions, _result) = read_bytes(&bytes, format);
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{format:?}: {positions:?}");
        }
    }
}

#[test]
fn gzip_magic_with_garbage_is_a_broken_file_not_a_panic() {
    let (positions, result) = read_bytes(&[0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5], Format::Text);
    assert!(positions.is_empty());
    assert!(
        matches!(
            result,
            Err(FeedError::Broken { .. }) | Err(FeedError::Unreadable(_))
        ),
        "{result:?}"
    );
}

fn rows_of(name: &str, bytes: &[u8], opts: &ReadOptions) -> Vec<RawRecord> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let mut rows = Vec::new();
    read(&path, opts, &mut |item| {
        match item {
            Item::Row(r) => rows.push(r),
            Item::Bad { reason, .. } => panic!("bad row: {reason}"),
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    rows
}

#[test]
fn csv_fills_first_and_last_seen_by_their_common_names() {
    let seen = |r: &RawRecord| (r.first_seen.clone(), r.last_seen.clone());
    for header in [
        "value,first_seen,last_seen",
        "value,firstSeen,lastSeen",
        "value,First Seen,Last Seen",
        "value,first-seen,last-seen",
    ] {
        let text = format!("{header}\n1.2.3.4,2026-10-04,2026-11-20T08:00:00Z\n");
        let rows = rows_of("f.csv", text.as_bytes(), &ReadOptions::default());
        assert_eq!(
            seen(&rows[0]),
            (
                Some("2026-10-04".into()),
                Some("2026-11-20T08:00:00Z".into())
            ),
            "{header}"
        );
    }
    // By an explicit mapping, the column's own name not guessed.
    let opts = ReadOptions {
        columns: [
            (Field::FirstSeen, "added".to_string()),
            (Field::LastSeen, "changed".to_string()),
        ]
        .into(),
        ..ReadOptions::default()
    };
    let rows = rows_of(
        "f.csv",
        b"value,added,changed,first_seen\n1.2.3.4,1,2,3\n",
        &opts,
    );
    assert_eq!(seen(&rows[0]), (Some("1".into()), Some("2".into())));
}

#[test]
fn json_fills_first_and_last_seen_by_their_common_names() {
    let rows = rows_of(
        "f.json",
        br#"[{"summary":"1.2.3.4","firstSeen":"2026-10-04","lastSeen":1790000000},
             {"value":"5.6.7.8","first_seen":"2026-10-05","last seen":"2026-10-06"}]"#,
        &ReadOptions::default(),
    );
    assert_eq!(rows[0].first_seen.as_deref(), Some("2026-10-04"));
    assert_eq!(rows[0].last_seen.as_deref(), Some("1790000000"));
    assert_eq!(rows[1].first_seen.as_deref(), Some("2026-10-05"));
    assert_eq!(rows[1].last_seen.as_deref(), Some("2026-10-06"));
    let opts = ReadOptions {
        columns: [(Field::FirstSeen, "created".to_string())].into(),
        ..ReadOptions::default()
    };
    let rows = rows_of(
        "f.ndjson",
        b"{\"ioc\":\"1.2.3.4\",\"created\":\"2026-10-04\",\"first_seen\":\"x\"}\n",
        &opts,
    );
    assert_eq!(rows[0].first_seen.as_deref(), Some("2026-10-04"));
}

#[test]
fn set_fills_every_field() {
    let mut r = RawRecord::default();
    for f in Field::ALL {
        r.set(f, format!("{f}"));
    }
    assert_eq!(r.value.as_deref(), Some("value"));
    assert_eq!(r.kind.as_deref(), Some("type"));
    assert_eq!(r.rating.as_deref(), Some("rating"));
    assert_eq!(r.confidence.as_deref(), Some("confidence"));
    assert_eq!(r.tags, vec!["tags"]);
    assert_eq!(r.description.as_deref(), Some("description"));
    assert_eq!(r.owner.as_deref(), Some("owner"));
    assert_eq!(r.md5.as_deref(), Some("md5"));
    assert_eq!(r.sha1.as_deref(), Some("sha1"));
    assert_eq!(r.sha256.as_deref(), Some("sha256"));
    assert_eq!(r.key_name.as_deref(), Some("key_name"));
    assert_eq!(r.value_name.as_deref(), Some("value_name"));
    assert_eq!(r.value_type.as_deref(), Some("value_type"));
    assert_eq!(
        r.attributes,
        vec![("Source".to_string(), "source".to_string())]
    );
    assert_eq!(r.first_seen.as_deref(), Some("first_seen"));
    assert_eq!(r.last_seen.as_deref(), Some("last_seen"));
}
