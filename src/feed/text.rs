//! Plain lists: one value per line, `#` comments, blank lines skipped.

use std::io::BufRead;

use super::{FeedError, Flow, Item, RawRecord, ReadOptions, read_line_limited};

pub fn read(
    mut input: impl BufRead,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    let mut buf = Vec::with_capacity(256);
    let mut line = 0u64;
    loop {
        let fits = match read_line_limited(&mut input, &mut buf, opts.max_line_bytes) {
            Ok(Some(fits)) => fits,
            Ok(None) => return Ok(()),
            Err(e) => return Err(super::broken(line + 1, &e)),
        };
        line += 1;
        let item = if !fits {
            Item::Bad {
                position: line,
                line,
                input: String::new(),
                reason: format!(
                    "line longer than {} bytes (watch.max_line_bytes)",
                    opts.max_line_bytes
                ),
            }
        } else {
            match std::str::from_utf8(&buf) {
                Err(_) => Item::Bad {
                    position: line,
                    line,
                    input: super::echo_bytes(&buf),
                    reason: "invalid UTF-8".into(),
                },
                Ok(s) => {
                    let s = if line == 1 {
                        s.trim_start_matches('\u{feff}')
                    } else {
                        s
                    };
                    let t = s.trim();
                    if t.is_empty() || t.starts_with('#') {
                        continue;
                    }
                    Item::Row(RawRecord::value(line, t))
                }
            }
        };
        if sink(item).is_break() {
            return Err(FeedError::Stopped);
        }
    }
}
