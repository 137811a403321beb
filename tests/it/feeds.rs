//! Feed readers on tricky fixtures, asserting exact counts and reasons.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use tc_ingest::feed::{self, FeedError, Field, Format, Item, ReadOptions};
use tc_ingest::normalize::{self, FeedDefaults};

use crate::helpers::data;

/// Reads a file and normalizes every row: (accepted summaries, rejects as
/// (line, reason), the read result).
type Read = (Vec<String>, Vec<(u64, String)>, Result<Format, FeedError>);

fn read(path: &Path, opts: &ReadOptions) -> Read {
    let (items, r) = items(path, opts);
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for item in items {
        match item {
            Item::Row(rec) => match normalize::record(&rec, &FeedDefaults::default()) {
                Ok(n) => ok.push(n.indicator.summary().to_string()),
                Err(e) => bad.push((rec.line, e.message)),
            },
            Item::Bad { line, reason, .. } | Item::Refused { line, reason, .. } => {
                bad.push((line, reason));
            }
            Item::Skipped { line, what, .. } => bad.push((line, format!("skipped: {what}"))),
        }
    }
    (ok, bad, r)
}

/// Every item of reading a file, and the read result.
fn items(path: &Path, opts: &ReadOptions) -> (Vec<Item>, Result<Format, FeedError>) {
    let mut items = Vec::new();
    let r = feed::read(path, opts, &mut |item| {
        items.push(item);
        ControlFlow::Continue(())
    });
    (items, r)
}

#[test]
fn csv_with_bom_crlf_semicolons_quoted_newlines_and_comments() {
    let (ok, bad, r) = read(&data("bom_crlf.csv"), &ReadOptions::default());
    assert_eq!(r.unwrap(), Format::Csv);
    assert_eq!(
        ok,
        vec!["1.2.3.4", "http://evil.com/x;y", "evil.org", "5.6.7.8"]
    );
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].1.contains("cannot determine indicator type"),
        "{bad:?}"
    );
}

#[test]
fn csv_rows_with_wrong_field_counts_and_bad_utf8_are_rejected_with_lines() {
    let (ok, bad, r) = read(&data("bad_rows.csv"), &ReadOptions::default());
    r.unwrap();
    assert_eq!(ok, vec!["1.2.3.4"]);
    let lines: Vec<u64> = bad.iter().map(|b| b.0).collect();
    assert_eq!(lines, vec![3, 4, 5, 6], "{bad:?}");
    assert!(bad[0].1.contains("4 fields where the header has 3"));
    assert!(bad[1].1.contains("1 fields where the header has 3"));
    assert!(bad[2].1.contains("invalid UTF-8"));
    assert!(bad[3].1.contains("rating"));
}

#[test]
fn tsv_with_aliases_for_columns_and_types() {
    let (ok, bad, r) = read(&data("mixed.tsv"), &ReadOptions::default());
    assert_eq!(r.unwrap(), Format::Tsv);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        ok,
        vec![
            "1.2.3.4",
            "HKEY_LOCAL_MACHINE\\Software\\Run :   : REG_NONE",
            "Mozilla/5.0 (X11)"
        ]
    );
}

#[test]
fn explicit_column_mapping_wins() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.csv");
    std::fs::write(
        &p,
        "value,observable_x,score\nignored.example.com,1.2.3.4,4\n",
    )
    .unwrap();
    let opts = ReadOptions {
        columns: [
            (Field::Value, "observable_x".to_string()),
            (Field::Rating, "score".into()),
        ]
        .into(),
        ..ReadOptions::default()
    };
    let (items, r) = items(&p, &opts);
    r.unwrap();
    let rows: Vec<_> = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rows[0].value.as_deref(), Some("1.2.3.4"));
    assert_eq!(rows[0].rating.as_deref(), Some("4"));
}

#[test]
fn plain_lists_with_comments_blanks_wrapping_and_no_final_newline() {
    let (ok, bad, r) = read(&data("tricky.txt"), &ReadOptions::default());
    assert_eq!(r.unwrap(), Format::Text);
    assert_eq!(
        ok,
        vec![
            "1.2.3.4",
            "evil.example.com",
            "http://example.com/Path",
            "zero-width.example.com",
            "ASN123",
            "2001:db8::1"
        ]
    );
    assert_eq!(
        bad,
        vec![(
            9,
            "cannot determine indicator type of \"not_a_thing\" (give a type)".to_string()
        )]
    );
}

#[test]
fn tiny_and_empty_files() {
    let (ok, bad, r) = read(&data("tiny.txt"), &ReadOptions::default());
    assert_eq!(
        (ok, bad.len(), r.is_ok()),
        (vec!["1.2.3.4".to_string()], 0, true)
    );
    let (ok, bad, r) = read(&data("empty.txt"), &ReadOptions::default());
    assert_eq!((ok.len(), bad.len(), r.is_ok()), (0, 0, true));
    let dir = tempfile::tempdir().unwrap();
    for name in ["e.csv", "e.json", "e.ndjson"] {
        let p = dir.path().join(name);
        std::fs::write(&p, "").unwrap();
        let (ok, bad, r) = read(&p, &ReadOptions::default());
        assert!(
            ok.is_empty() && bad.is_empty() && r.is_ok(),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn json_batch_style_objects_strings_and_bad_elements() {
    let (items, r) = items(&data("batch.json"), &ReadOptions::default());
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for i in items {
        match i {
            Item::Row(r) => rows.push(r),
            Item::Bad {
                position, reason, ..
            } => bad.push((position, reason)),
            other => panic!("neither a row nor a bad row: {other:?}"),
        }
    }
    assert_eq!(r.unwrap(), Format::Json);
    assert_eq!(rows.len(), 5);
    assert_eq!(
        bad,
        vec![(4, "element is not an object or a string".to_string())]
    );
    let first = normalize::record(&rows[0], &FeedDefaults::default()).unwrap();
    assert_eq!(
        first.payload.tags,
        vec!["c2"],
        "tags deduplicated ignoring case"
    );
    assert_eq!(first.payload.rating, Some(5.0));
    assert_eq!(first.payload.attributes.len(), 2);
    assert_eq!(first.payload.attributes[0].value, "team server");
    assert_eq!(
        normalize::record(&rows[1], &FeedDefaults::default())
            .unwrap()
            .indicator
            .summary(),
        "ASN13335"
    );
    assert_eq!(
        normalize::record(&rows[2], &FeedDefaults::default())
            .unwrap()
            .indicator
            .summary(),
        "evil.example.com"
    );
    let cidr = normalize::record(&rows[4], &FeedDefaults::default()).unwrap_err();
    assert_eq!(cidr.rule, "cidr-host-bits");
}

#[test]
fn ndjson_lines_each_stand_alone() {
    let (ok, bad, r) = read(&data("lines.ndjson"), &ReadOptions::default());
    assert_eq!(r.unwrap(), Format::Ndjson);
    assert_eq!(
        ok,
        vec![
            "1.2.3.4",
            "http://x.com",
            "d41d8cd98f00b204e9800998ecf8427e : e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ]
    );
    let lines: Vec<u64> = bad.iter().map(|b| b.0).collect();
    assert_eq!(lines, vec![4, 5, 6], "{bad:?}");
    assert!(bad[0].1.starts_with("invalid JSON"));
    assert!(bad[2].1.contains("empty label"), "{bad:?}");
}

#[test]
fn json_errors_at_row_1000_reject_the_element_or_break_the_file_keeping_the_rows_before() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..999)
        .map(|i| format!("{{\"value\": \"10.0.{}.{}\"}},\n", i / 256, i % 256))
        .collect();
    // An element that does not parse: rejected, and reading goes on.
    let p = dir.path().join("bad-element.json");
    let text =
        format!("[\n{rows}{{\"value\": \"10.9.9.9\" oops}},\n{{\"value\": \"10.9.9.10\"}}\n]\n");
    std::fs::write(&p, text).unwrap();
    let (ok, bad, r) = read(&p, &ReadOptions::default());
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(ok.len(), 1000);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 1001);
    assert!(bad[0].1.starts_with("invalid JSON"), "{bad:?}");
    // Structure that breaks (no comma between elements): the file stops
    // there, with the rows before it read.
    let p = dir.path().join("broken.json");
    let text = format!("[\n{rows}{{\"value\": \"10.9.9.9\"}}\n{{\"value\": \"10.9.9.10\"}}\n]\n");
    std::fs::write(&p, text).unwrap();
    let (ok, bad, r) = read(&p, &ReadOptions::default());
    assert_eq!(ok.len(), 1000);
    assert!(bad.is_empty());
    match r {
        Err(FeedError::Broken { line, reason }) => {
            assert_eq!(line, 1002);
            assert!(reason.contains("JSON syntax error"), "{reason}");
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn huge_line_and_huge_field_are_rejected_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ReadOptions {
        max_line_bytes: 1000,
        ..ReadOptions::default()
    };
    let p = dir.path().join("big.txt");
    std::fs::write(&p, format!("1.2.3.4\n{}\n5.6.7.8\n", "a".repeat(100_000))).unwrap();
    let (ok, bad, r) = read(&p, &opts);
    r.unwrap();
    assert_eq!(ok, vec!["1.2.3.4", "5.6.7.8"]);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 2);
    assert!(bad[0].1.contains("longer than 1000 bytes"));
    let p = dir.path().join("big.csv");
    std::fs::write(
        &p,
        format!(
            "value,description\n1.2.3.4,{}\n5.6.7.8,ok\n",
            "d".repeat(5000)
        ),
    )
    .unwrap();
    let (ok, bad, _) = read(&p, &opts);
    assert_eq!(ok, vec!["5.6.7.8"]);
    assert!(bad[0].1.contains("longer than 1000 bytes"), "{bad:?}");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_feeds_truncated_gzip_and_bombs() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..2000)
        .map(|i| format!("10.1.{}.{}\n", i / 256, i % 256))
        .collect();
    let p = dir.path().join("list.txt.gz");
    std::fs::write(&p, gzip(text.as_bytes())).unwrap();
    let (ok, _, r) = read(&p, &ReadOptions::default());
    assert_eq!((ok.len(), r.unwrap()), (2000, Format::Text));

    let gz = gzip(text.as_bytes());
    let p = dir.path().join("cut.txt.gz");
    std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
    let (ok, _, r) = read(&p, &ReadOptions::default());
    assert!(ok.len() < 2000);
    assert!(matches!(r, Err(FeedError::Broken { .. })), "{r:?}");

    let p = dir.path().join("bomb.txt.gz");
    std::fs::write(&p, gzip(&vec![b'\n'; 50 << 20])).unwrap();
    let opts = ReadOptions {
        max_decompressed_bytes: 1 << 20,
        ..ReadOptions::default()
    };
    match read(&p, &opts).2 {
        Err(FeedError::Broken { reason, .. }) => {
            assert!(reason.contains("exceeds the limit"), "{reason}")
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn format_is_sniffed_without_an_extension() {
    let dir = tempfile::tempdir().unwrap();
    for (content, format) in [
        ("[{\"value\": \"1.2.3.4\"}]", Format::Json),
        (
            "{\"value\": \"1.2.3.4\"}\n{\"value\": \"5.6.7.8\"}\n",
            Format::Ndjson,
        ),
        ("indicator,type\n1.2.3.4,ip\n", Format::Csv),
        ("1.2.3.4\n", Format::Text),
    ] {
        let p = dir.path().join("feed");
        std::fs::write(&p, content).unwrap();
        let (ok, bad, r) = read(&p, &ReadOptions::default());
        assert_eq!(r.unwrap(), format, "{content}");
        assert!(!ok.is_empty() && bad.is_empty(), "{content}: {bad:?}");
    }
}
