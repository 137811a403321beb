//! Plain lists: one value per line, blank lines and comment lines (`#`
//! and `;` by default, or the rule's `comment` prefixes) skipped. A comment
//! after the value, set off by white space (`192.0.2.0/24 ; SBL123`,
//! `evil.example # seen twice`), is cut off: the value is kept, the rest
//! fills the rule's `trailing` field or is dropped. A `#` or `;` inside a
//! value (a URL's fragment or parameters) is no comment.

use std::io::BufRead;

use super::{FeedError, Flow, Item, RawRecord, ReadOptions, read_line_limited};

pub fn read(
    mut input: impl BufRead,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    let mut buf = Vec::with_capacity(256);
    let mut line = 0u64;
    let default = [String::from("#"), String::from(";")];
    let prefixes: &[String] = if opts.comments.is_empty() {
        &default
    } else {
        &opts.comments
    };
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
                    if t.is_empty() || prefixes.iter().any(|p| t.starts_with(p.as_str())) {
                        continue;
                    }
                    let t = match keyed(t, opts.line_key.as_deref()) {
                        Ok(t) => t,
                        Err(what) => {
                            let item = Item::Skipped {
                                position: line,
                                line,
                                what,
                                withdraws: None,
                            };
                            if sink(item).is_break() {
                                return Err(FeedError::Stopped);
                            }
                            continue;
                        }
                    };
                    let (value, rest) = split_trailing(t, prefixes);
                    let mut rec = RawRecord::value(line, value);
                    if let (Some(field), Some(rest)) = (opts.trailing, rest) {
                        rec.set(field, rest.to_string());
                    }
                    Item::Row(rec)
                }
            }
        };
        if sink(item).is_break() {
            return Err(FeedError::Stopped);
        }
    }
}

/// With a line key, a keyed line's value (the word after the key), a
/// line of one word as it is (the same feed as a plain list), or why the
/// line is skipped; without one, the line.
fn keyed<'a>(line: &'a str, key: Option<&str>) -> Result<&'a str, String> {
    let Some(key) = key else {
        return Ok(line);
    };
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some(k), Some(value)) if k == key => Ok(value),
        (Some(_), None) => Ok(line),
        _ => Err(format!("not a {key} line")),
    }
}

/// A line's value and what follows a trailing comment: the first comment
/// prefix that comes after white space.
fn split_trailing<'a>(line: &'a str, prefixes: &[String]) -> (&'a str, Option<&'a str>) {
    let cut = line
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .find_map(|(i, _)| {
            let after = line[i..].trim_start();
            prefixes
                .iter()
                .find(|p| after.starts_with(p.as_str()))
                .map(|p| (i, line.len() - after.len() + p.len()))
        });
    match cut {
        Some((end, rest)) => {
            let rest = line[rest..].trim();
            (line[..end].trim_end(), (!rest.is_empty()).then_some(rest))
        }
        None => (line, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_trailing;

    #[test]
    fn trailing_comments_are_cut_off_and_comment_marks_inside_values_kept() {
        let p = [String::from("#"), String::from(";")];
        for (line, want) in [
            (
                "192.0.2.0/24 ; SBL123456",
                ("192.0.2.0/24", Some("SBL123456")),
            ),
            (
                "AS64496 ; EX | Example Networks",
                ("AS64496", Some("EX | Example Networks")),
            ),
            (
                "evil.example.com   # seen twice",
                ("evil.example.com", Some("seen twice")),
            ),
            ("http://x.example/a#frag", ("http://x.example/a#frag", None)),
            (
                "http://x.example/a;jsessionid=1",
                ("http://x.example/a;jsessionid=1", None),
            ),
            ("198.51.100.7 ;", ("198.51.100.7", None)),
            ("203.0.113.9", ("203.0.113.9", None)),
        ] {
            assert_eq!(split_trailing(line, &p), want, "{line:?}");
        }
        let slashes = [String::from("//")];
        assert_eq!(
            split_trailing("bad.example // from the partner", &slashes),
            ("bad.example", Some("from the partner"))
        );
    }
}
