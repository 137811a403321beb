//! Shared by the feed targets: read `data` in one format with small limits,
//! check what every reader promises whatever the bytes.

use std::ops::ControlFlow;
use std::path::Path;

use tc_ingest::feed::{self, ECHO_BYTES, FeedError, Format, Item, ReadOptions};

pub fn read(data: &[u8], format: Format) {
    let opts = ReadOptions {
        format: Some(format),
        max_line_bytes: 256,
        max_decompressed_bytes: 1 << 20,
        ..ReadOptions::default()
    };
    let mut last = 0u64;
    let result = feed::read_from(
        std::io::Cursor::new(data.to_vec()),
        Path::new("fuzz"),
        &opts,
        &mut |item| {
            // Positions only grow: resume relies on it.
            assert!(
                item.position() > last,
                "position {} after {last}",
                item.position()
            );
            last = item.position();
            if let Item::Bad { input, .. } = &item {
                assert!(input.len() <= ECHO_BYTES, "echo of {} bytes", input.len());
            }
            if let Item::Row(rec) = &item {
                // Every field a row holds came through the line limit.
                for v in [&rec.value, &rec.description].into_iter().flatten() {
                    assert!(v.len() <= data.len().max(1 << 20));
                }
                assert!(rec.input().len() <= ECHO_BYTES);
                let _ = tc_ingest::normalize::record(rec, &Default::default());
            }
            ControlFlow::Continue(())
        },
    );
    if let Err(FeedError::Broken { reason, .. } | FeedError::Unreadable(reason)) = &result {
        // Reasons quote the input only through an echo: bounded.
        assert!(
            reason.len() <= 2 * ECHO_BYTES + 512,
            "reason of {} bytes",
            reason.len()
        );
    }
}
