//! A JSON document's structure, walked byte by byte without building it:
//! where each value starts and ends, its bytes when they fit a limit, and
//! the rest of a longer value skipped without holding it. The readers of
//! JSON documents (arrays of indicators, and later STIX bundles and MISP
//! events) walk the outer structure with it and parse one element at a
//! time with serde_json, so an oversized element is one reject, not the
//! end of the file.
//!
//! Only the structure is checked here (brackets, strings, separators); an
//! element's own syntax is serde_json's business. Nesting is a counter,
//! never recursion: a 1 GB run of `[` is skipped in constant memory.

use std::io::{self, BufRead};

/// Why the structure cannot be followed any further: the document is
/// broken there and cannot be resynchronised.
#[derive(Debug)]
pub(super) enum ScanError {
    Io(io::Error),
    /// `line` and what was wrong there.
    Syntax {
        line: u64,
        what: String,
    },
}

impl ScanError {
    /// The reason as a reader reports it, with the line it is on.
    pub(super) fn into_parts(self, line: u64) -> (u64, String) {
        match self {
            ScanError::Io(e) => (line, e.to_string()),
            ScanError::Syntax { line, what } => {
                (line, format!("JSON syntax error at line {line}: {what}"))
            }
        }
    }
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

/// Why a walk over a document ended early: the sink asked to stop, or the
/// structure could not be followed.
pub(super) enum Stop {
    Sink,
    Scan(ScanError),
}

impl From<ScanError> for Stop {
    fn from(e: ScanError) -> Self {
        Stop::Scan(e)
    }
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Scan(ScanError::Io(e))
    }
}

impl Stop {
    /// A walk's end as a reader reports it; `line` is where the walk was.
    pub(super) fn ended(result: Result<(), Stop>, line: u64) -> Result<(), super::FeedError> {
        match result {
            Ok(()) => Ok(()),
            Err(Stop::Sink) => Err(super::FeedError::Stopped),
            Err(Stop::Scan(e)) => {
                let (line, reason) = e.into_parts(line);
                Err(super::FeedError::Broken { line, reason })
            }
        }
    }
}

/// A byte as an error message shows it.
fn shown(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// The walker over a buffered input, counting lines.
pub(super) struct Scanner<R> {
    input: R,
    line: u64,
}

impl<R: BufRead> Scanner<R> {
    /// `line` is the line the input starts on.
    pub(super) fn new(input: R, line: u64) -> Self {
        Self { input, line }
    }

    /// The line the next byte is on.
    pub(super) fn line(&self) -> u64 {
        self.line
    }

    /// Skips whitespace and returns the next byte without taking it;
    /// `None` at the end of the input.
    pub(super) fn peek(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            let n = buf
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(buf.len());
            self.line += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            let next = buf.get(n).copied();
            self.input.consume(n);
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    /// Takes the next byte (after whitespace) if it is `b`.
    pub(super) fn eat(&mut self, b: u8) -> io::Result<bool> {
        if self.peek()? == Some(b) {
            self.input.consume(1);
            return Ok(true);
        }
        Ok(false)
    }

    /// Takes the next byte, which must be `b`.
    pub(super) fn expect(&mut self, b: u8, after: &str) -> Result<(), ScanError> {
        match self.peek()? {
            Some(x) if x == b => {
                self.input.consume(1);
                Ok(())
            }
            found => Err(self.syntax(format!(
                "expected '{}' {after}, found {}",
                b as char,
                found.map_or_else(|| "the end of the file".into(), shown)
            ))),
        }
    }

    /// A syntax error at the current line.
    pub(super) fn syntax(&self, what: String) -> ScanError {
        ScanError::Syntax {
            line: self.line,
            what,
        }
    }

    /// Reads the next value (after whitespace): its bytes into `buf` when
    /// they are at most `max`, else `buf` is left empty, the rest of the
    /// value is skipped, and the answer is `false`. With `buf` `None` the
    /// value is only skipped.
    ///
    /// # Errors
    /// The end of the input inside the value, a byte that cannot start a
    /// value, or a read error.
    pub(super) fn value(
        &mut self,
        mut buf: Option<&mut Vec<u8>>,
        max: usize,
    ) -> Result<bool, ScanError> {
        if let Some(b) = buf.as_deref_mut() {
            b.clear();
        }
        let start = self.line;
        let first = match self.peek()? {
            Some(b) => b,
            None => return Err(self.syntax("expected a value, found the end of the file".into())),
        };
        if matches!(first, b']' | b'}' | b',' | b':') {
            return Err(self.syntax(format!("expected a value, found {}", shown(first))));
        }
        let mut state = Walk {
            closers: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            scalar: !matches!(first, b'"' | b'[' | b'{'),
            started: false,
        };
        let mut fits = true;
        loop {
            let chunk = self.input.fill_buf()?;
            if chunk.is_empty() {
                if state.scalar && state.started {
                    break;
                }
                return Err(ScanError::Syntax {
                    line: start,
                    what: "the file ends inside a value that starts here".into(),
                });
            }
            let (n, done) = match state.advance(chunk) {
                Ok(step) => step,
                Err(at) => {
                    let line =
                        self.line + chunk[..at].iter().filter(|&&b| b == b'\n').count() as u64;
                    return Err(ScanError::Syntax {
                        line,
                        what: format!("{} closes a bracket of the other kind", shown(chunk[at])),
                    });
                }
            };
            self.line += chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            if let Some(b) = buf.as_deref_mut()
                && fits
            {
                if b.len() + n > max {
                    fits = false;
                    b.clear();
                    // Give back what was held for an element this long.
                    b.shrink_to(max.min(64 << 10));
                } else {
                    b.extend_from_slice(&chunk[..n]);
                }
            }
            self.input.consume(n);
            if done {
                break;
            }
        }
        Ok(fits && buf.is_some())
    }
}

/// How deep the brackets whose closers are checked may go: past it only
/// the depth is counted (a 1 GB run of `[` costs no memory).
const CHECKED_DEPTH: usize = 4096;

/// Where a value's walk is.
struct Walk {
    /// The closers expected, innermost last, down to [`CHECKED_DEPTH`].
    closers: Vec<u8>,
    depth: u64,
    in_string: bool,
    escaped: bool,
    /// A number, `true`, `false`, `null` (or garbage): ends before the
    /// next delimiter.
    scalar: bool,
    started: bool,
}

impl Walk {
    /// Walks `chunk`: how many bytes belong to the value, and whether it
    /// ended there; `Err` with the index of a bracket closed by the other
    /// kind.
    fn advance(&mut self, chunk: &[u8]) -> Result<(usize, bool), usize> {
        for (i, &b) in chunk.iter().enumerate() {
            if self.scalar {
                if matches!(
                    b,
                    b',' | b']' | b'}' | b':' | b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'[' | b'{'
                ) {
                    return Ok((i, true));
                }
                self.started = true;
                continue;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        return Ok((i + 1, true));
                    }
                }
                continue;
            }
            // Closers are checked while the depth is within the stack.
            let checked = self.closers.len() as u64 == self.depth;
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    if checked && self.closers.len() < CHECKED_DEPTH {
                        self.closers.push(if b == b'[' { b']' } else { b'}' });
                    }
                    self.depth += 1;
                }
                b']' | b'}' => {
                    if checked && self.closers.pop() != Some(b) {
                        return Err(i);
                    }
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Ok((i + 1, true));
                    }
                }
                _ => {}
            }
        }
        Ok((chunk.len(), false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(doc: &str, max: usize) -> Vec<Result<Option<String>, String>> {
        let mut s = Scanner::new(doc.as_bytes(), 1);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            match s.peek().unwrap() {
                None => break,
                Some(b',') => {
                    s.eat(b',').unwrap();
                    continue;
                }
                _ => {}
            }
            match s.value(Some(&mut buf), max) {
                Ok(true) => out.push(Ok(Some(String::from_utf8(buf.clone()).unwrap()))),
                Ok(false) => out.push(Ok(None)),
                Err(e) => {
                    out.push(Err(e.into_parts(0).1));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn values_are_split_at_their_ends_whatever_they_hold() {
        let got = values(
            r#"{"a": "]\"}", "b": [1, {"c": "{"}]}, "x\\", 12.5e3,true , null,[[]]"#,
            1000,
        );
        let want = [
            r#"{"a": "]\"}", "b": [1, {"c": "{"}]}"#,
            r#""x\\""#,
            "12.5e3",
            "true",
            "null",
            "[[]]",
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|w| Ok(Some(w.to_string())))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_value_past_the_limit_is_skipped_whole_and_the_next_is_read() {
        let long = format!(r#"{{"v": "{}"}}, "after""#, "s".repeat(10_000));
        assert_eq!(
            values(&long, 64),
            [Ok(None), Ok(Some("\"after\"".to_string()))]
        );
        let deep = format!("{}{}, 1", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(values(&deep, 64), [Ok(None), Ok(Some("1".to_string()))]);
    }

    #[test]
    fn a_value_cut_short_by_the_end_is_a_syntax_error_at_its_start() {
        let got = values("\n\n{\"a\": \"open\n", 1000);
        let [Err(e)] = &got[..] else {
            panic!("{got:?}")
        };
        assert!(e.contains("line 3") && e.contains("ends inside"), "{e}");
        let got = values("]", 1000);
        let [Err(e)] = &got[..] else {
            panic!("{got:?}")
        };
        assert!(e.contains("found ']'"), "{e}");
    }

    #[test]
    fn a_bracket_closed_by_the_other_kind_is_a_syntax_error_where_it_is() {
        let got = values("{\"v\": \"a\",\n\"t\": [1}, {\"v\": \"b\"}]", 1000);
        let [Err(e)] = &got[..] else {
            panic!("{got:?}")
        };
        assert!(e.contains("line 2") && e.contains("other kind"), "{e}");
        // Past the checked depth only the count is kept, and it still ends.
        let deep = format!("{}{}, 1", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(values(&deep, 64), [Ok(None), Ok(Some("1".to_string()))]);
    }

    #[test]
    fn lines_are_counted_across_values_and_whitespace() {
        let mut s = Scanner::new("\n[\n\"a\",\n\n{\"b\":\n1}\n]".as_bytes(), 1);
        s.expect(b'[', "to open").unwrap();
        assert_eq!(s.peek().unwrap(), Some(b'"'));
        assert_eq!(s.line(), 3);
        s.value(None, 0).unwrap();
        assert!(s.eat(b',').unwrap());
        s.peek().unwrap();
        assert_eq!(s.line(), 5);
        s.value(None, 0).unwrap();
        assert_eq!(s.line(), 6);
        s.expect(b']', "to close").unwrap();
        assert_eq!(s.peek().unwrap(), None);
    }
}
