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
