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
        for format in Format::RULE_FORMATS {
            let (positions, _result) = read_bytes(&bytes, format);
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{format:?}: {positions:?}");
        }
    }

    /// Real STIX and MISP files cut short and with bytes changed: read as
    /// what they are, never a panic, positions growing.
    #[test]
    fn damaged_stix_and_misp_files_never_panic_and_positions_increase(
        which in 0..FIXTURES.len(),
        cut in 0.0f64..1.0,
        flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..8),
    ) {
        let (format, whole) = FIXTURES[which];
        let mut bytes = whole[..(whole.len() as f64 * cut) as usize].to_vec();
        for (at, b) in flips {
            if !bytes.is_empty() {
                let i = ((bytes.len() - 1) as f64 * at) as usize;
                bytes[i] = b;
            }
        }
        let (positions, _result) = read_bytes(&bytes, format);
        prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{format:?}: {positions:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// The public-feed options on any bytes: no panic, positions growing.
    #[test]
    fn feed_shape_options_on_any_bytes_never_panic_and_positions_increase(bytes in feedish()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed");
        std::fs::write(&path, &bytes).unwrap();
        let positional: BTreeMap<Field, String> =
            [(Field::Value, "2".to_string()), (Field::Description, "1".to_string())].into();
        let shapes = [
            ReadOptions { format: Some(Format::Csv), header: false, columns: positional, ..ReadOptions::default() },
            ReadOptions { format: Some(Format::Csv), header_in_comment: true, delimiter: Some(b'|'), ..ReadOptions::default() },
            ReadOptions { format: Some(Format::Csv), comments: vec![";".into()], ..ReadOptions::default() },
            ReadOptions { format: Some(Format::Text), line_key: Some("ExitAddress".into()), trailing: Some(Field::Tags), ..ReadOptions::default() },
            ReadOptions { format: Some(Format::Text), comments: vec!["//".into()], ..ReadOptions::default() },
        ];
        for opts in shapes {
            let opts = ReadOptions { max_line_bytes: 256, ..opts };
            let mut positions = Vec::new();
            let _ = read(&path, &opts, &mut |item| {
                positions.push(item.position());
                ControlFlow::Continue(())
            });
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{opts:?}: {positions:?}");
        }
    }
}

/// Files written outside the project (`tests/fixtures/`).
const FIXTURES: [(Format, &[u8]); 4] = [
    (
        Format::Stix,
        include_bytes!("../../tests/fixtures/stix/stix2-library.json"),
    ),
    (
        Format::Stix,
        include_bytes!("../../tests/fixtures/stix/stix2-library.ndjson"),
    ),
    (
        Format::Misp,
        include_bytes!("../../tests/fixtures/misp/pymisp-event.json"),
    ),
    (
        Format::Misp,
        include_bytes!("../../tests/fixtures/misp/restsearch-response.json"),
    ),
];

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
            other => panic!("not a row: {other:?}"),
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

/// Every item and the end of reading `bytes` as `name` with a 256-byte limit.
fn read_small(name: &str, bytes: &[u8]) -> (Vec<Item>, Result<Format, FeedError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let opts = ReadOptions {
        max_line_bytes: 256,
        ..ReadOptions::default()
    };
    let mut items = Vec::new();
    let result = read(&path, &opts, &mut |item| {
        items.push(item);
        ControlFlow::Continue(())
    });
    (items, result)
}

#[track_caller]
fn check_stops_at_the_limit(name: &str, bytes: &[u8], rows_before: usize, line: u64) {
    let (items, result) = read_small(name, bytes);
    let rows = items.iter().filter(|i| matches!(i, Item::Row(_))).count();
    assert_eq!(rows, rows_before, "{name}: {items:?}");
    match result {
        Err(FeedError::Broken { line: l, reason }) => {
            assert_eq!(l, line, "{name}: {reason}");
            assert!(reason.contains("max_line_bytes"), "{name}: {reason}");
            assert!(reason.len() < ECHO_BYTES, "{name}: {reason}");
        }
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn readers_that_buffer_a_row_stop_at_the_limit() {
    let long = "x".repeat(100_000);
    check_stops_at_the_limit(
        "h.csv",
        format!("value,{long}\n1.2.3.4,a\n").as_bytes(),
        0,
        1,
    );
    check_stops_at_the_limit(
        "q.csv",
        format!(
            "value,d\n1.2.3.4,a\n5.6.7.8,\"open\n{}",
            "9.9.9.9,b\n".repeat(10_000)
        )
        .as_bytes(),
        1,
        3,
    );
}

/// Lines and whether each item was a row, checking every bad one says why.
fn lines_and_rows(items: &[Item], why: &str) -> Vec<(u64, bool)> {
    items
        .iter()
        .map(|i| match i {
            Item::Row(r) => (r.line, true),
            Item::Bad { line, reason, .. } => {
                assert!(reason.contains(why), "{reason}");
                assert!(reason.len() < ECHO_BYTES, "{reason}");
                (*line, false)
            }
            other => panic!("neither a row nor a bad row: {other:?}"),
        })
        .collect()
}

#[test]
fn a_json_element_past_the_limit_is_skipped_and_reading_goes_on() {
    let long = "x".repeat(100_000);
    let doc = [
        "[\"1.2.3.4\",".to_string(),
        format!("\"{long}\", \"5.6.7.8\","),
        format!("{{\"value\": \"9.9.9.9\", \"description\": \"{long}\"}},"),
        format!(
            "{{\"value\": \"8.8.8.8\"}}, [{}{}],",
            "[".repeat(50_000),
            "]".repeat(50_000)
        ),
        "\"7.7.7.7\"]".to_string(),
    ]
    .join("\n");
    let (items, result) = read_small("s.json", doc.as_bytes());
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        lines_and_rows(&items, "max_line_bytes"),
        [
            (1, true),
            (2, false),
            (2, true),
            (3, false),
            (4, true),
            (4, false),
            (5, true)
        ]
    );
    let positions: Vec<u64> = items.iter().map(Item::position).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5, 6, 7], "one position per element");
}

#[test]
fn a_json_key_past_the_limit_before_the_array_is_skipped_with_its_value() {
    let long = "x".repeat(100_000);
    let (items, result) = read_small(
        "k.json",
        format!("{{\"{long}\": {{\"a\": [1]}}, \"data\": [\"1.2.3.4\"]}}").as_bytes(),
    );
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(lines_and_rows(&items, ""), [(1, true)]);
}

#[test]
fn a_json_element_that_does_not_parse_is_a_reject_but_broken_structure_fails_the_file() {
    let (items, result) = read_small(
        "e.json",
        b"[\"1.2.3.4\", {\"value\" \"x\"}, 1.2.3.4, {\"value\": \"5.6.7.8\"},]",
    );
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        lines_and_rows(&items, "invalid JSON"),
        [(1, true), (1, false), (1, false), (1, true)]
    );
    for (name, doc, line, rows, what) in [
        (
            "missing-comma.json",
            "[\"1.2.3.4\"\n\"5.6.7.8\"]",
            2,
            1,
            "expected ']' or ','",
        ),
        (
            "cut.json",
            "[\"1.2.3.4\",\n{\"value\": \"5.6",
            2,
            1,
            "ends inside",
        ),
        ("unclosed.json", "[\"1.2.3.4\",\n", 2, 1, "expected a value"),
        ("trailing.json", "[\"1.2.3.4\"] x", 1, 1, "after the end"),
        (
            "no-array.json",
            "{\"other\": [\"1.2.3.4\"]}",
            1,
            0,
            "no array of indicators",
        ),
    ] {
        let (items, result) = read_small(name, doc.as_bytes());
        assert_eq!(items.len(), rows, "{name}: {items:?}");
        match result {
            Err(FeedError::Broken { line: l, reason }) => {
                assert_eq!(l, line, "{name}: {reason}");
                assert!(reason.contains(what), "{name}: {reason}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn rows_within_the_limit_and_whitespace_are_read_as_before() {
    let (items, result) = read_small("w.json", &b" \n".repeat(100_000));
    assert!(items.is_empty() && result.is_ok(), "{result:?}");
    let (items, result) = read_small("n.json", b"\n\n[\"1.2.3.4\",\n\"5.6.7.8\"]");
    assert!(result.is_ok(), "{result:?}");
    let lines: Vec<u64> = items.iter().map(Item::line).collect();
    assert_eq!(lines, [3, 4]);
    let csv: String = (0..1000)
        .map(|i| format!("10.0.{}.{}\n", i / 250, i % 250))
        .collect();
    let (items, result) = read_small("many.csv", format!("value\n{csv}").as_bytes());
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(items.len(), 1000);
}

#[test]
fn echoes_of_input_are_cut() {
    let mut bytes = b"\xff".to_vec();
    bytes.extend("é".repeat(200).as_bytes());
    bytes.push(b'\n');
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.txt");
    std::fs::write(&path, &bytes).unwrap();
    let mut items = Vec::new();
    read(&path, &ReadOptions::default(), &mut |item| {
        items.push(item);
        ControlFlow::Continue(())
    })
    .unwrap();
    let Item::Bad { input, .. } = &items[0] else {
        panic!("{items:?}")
    };
    assert!(
        input.len() <= ECHO_BYTES && input.len() > 300,
        "{}",
        input.len()
    );
    let wide = format!(
        "a,{}\n",
        (0..100)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (_, result) = read_small("wide.csv", wide.as_bytes());
    let Err(FeedError::Broken { reason, .. }) = result else {
        panic!("{result:?}")
    };
    assert!(
        reason.contains("101 columns") && reason.len() < 2 * ECHO_BYTES,
        "{reason}"
    );
    assert_eq!(cut(&"é".repeat(300)).len(), ECHO_BYTES);
    assert_eq!(cut("short"), "short");
}

#[test]
fn csv_rows_split_by_a_lone_cr_get_positions_that_grow() {
    // Found by fuzzing (feed_csv): both rows were on line 2.
    let (items, _) = read_small("cr.csv", b"sha1\n\x95\rh");
    let positions: Vec<u64> = items.iter().map(Item::position).collect();
    assert_eq!(positions, [2, 3]);
}

#[test]
fn a_csv_row_past_the_limit_on_one_line_is_skipped_and_reading_goes_on() {
    let long = "x".repeat(100_000);
    let text = format!(
        "# c\nvalue,d\n1.2.3.4,a\n5.6.7.8,{long}\n9.9.9.9,b\n8.8.8.8,\"{long}\"\n7.7.7.7,c\n"
    );
    let (items, result) = read_small("l.csv", text.as_bytes());
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        lines_and_rows(&items, "max_line_bytes"),
        [(3, true), (4, false), (5, true), (6, false), (7, true)]
    );
}

#[test]
fn columns_named_by_what_they_hold_give_way_and_never_shift_a_comma_csv() {
    let opts = ReadOptions::default();
    let value = |rows: Vec<RawRecord>| rows[0].value.clone();
    // A column named as the value wins over one named by what it holds.
    let rows = rows_of(
        "a.csv",
        b"src_ip,dst_ip,indicator\n192.0.2.1,192.0.2.2,evil.example\n",
        &opts,
    );
    assert_eq!(value(rows).as_deref(), Some("evil.example"));
    let rows = rows_of(
        "a.ndjson",
        b"{\"indicator\": \"evil.example\", \"url\": \"https://report.example/1\"}\n",
        &opts,
    );
    assert_eq!(value(rows).as_deref(), Some("evil.example"));
    // A comma CSV row with a stray comma is refused, not realigned.
    let (items, _) = read_small(
        "b.csv",
        b"url,threat,ref\nhttp://evil.example/a,b,malware,x\n",
    );
    assert!(
        matches!(&items[..], [Item::Bad { reason, .. }] if reason.contains("4 fields")),
        "{items:?}"
    );
    // A `|` table's stray `|` in a free-text column does not shift the value.
    let rows = rows_of(
        "dp.txt",
        b"#  ASN  |  ASname  |  ipaddr  |  category\n64496 | EXAMPLE|AS | 192.0.2.10 | ssh\n",
        &opts,
    );
    assert_eq!(value(rows).as_deref(), Some("192.0.2.10"));
    // A data row holding the word `url` is no header: the comment line is.
    let rows = rows_of(
        "tf.csv",
        b"# \"ioc_value\",\"ioc_type\"\n\"http://evil.example/x\", \"url\"\n\"192.0.2.7:443\", \"ip:port\"\n",
        &opts,
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].kind.as_deref(), Some("url"));
    // A `.txt` list with tab-separated notes stays a list.
    let (items, format) = read_small("l.txt", b"192.0.2.1\tscanner\n192.0.2.2\n");
    assert_eq!(format.unwrap(), Format::Text, "{items:?}");
}
