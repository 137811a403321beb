//! Echoes of a feed's own bytes in reasons, rejects, reports and logs: cut
//! to [`ECHO_BYTES`] while they are built, never after.

use std::io;

/// The most of a feed's own bytes any reason, reject, errors report or log
/// line repeats.
pub const ECHO_BYTES: usize = 512;

/// A string that keeps at most [`ECHO_BYTES`] of what is pushed or written
/// into it, cut at a character boundary, and never allocates more: echoes
/// of input are cut while they are built, not after.
#[derive(Debug, Default)]
pub struct Echo {
    s: String,
    full: bool,
}

impl Echo {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends what still fits of `part`.
    pub fn push(&mut self, part: &str) {
        if self.full {
            return;
        }
        let room = ECHO_BYTES - self.s.len();
        if part.len() <= room {
            self.s.push_str(part);
        } else {
            self.s.push_str(&part[..floor_char_boundary(part, room)]);
            self.full = true;
        }
    }

    /// Appends what still fits of `bytes`, invalid UTF-8 replaced.
    pub fn push_lossy(&mut self, bytes: &[u8]) {
        let head = &bytes[..bytes.len().min(ECHO_BYTES - self.s.len())];
        self.push(&String::from_utf8_lossy(head));
    }

    pub fn into_string(self) -> String {
        self.s
    }
}

impl std::fmt::Write for Echo {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s);
        // Stop a formatter that would go on writing into a full echo.
        if self.full {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

impl io::Write for Echo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.full {
            return Err(io::Error::other("echo full"));
        }
        // serde_json writes whole UTF-8 sequences, so a lossy push of a
        // piece cut at the end only loses the cut character.
        self.push_lossy(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `s` cut to at most [`ECHO_BYTES`] bytes.
pub fn cut(s: &str) -> String {
    let mut e = Echo::new();
    e.push(s);
    e.into_string()
}

/// Bytes of input, as a reject shows them: cut, invalid UTF-8 replaced.
pub fn echo_bytes(bytes: &[u8]) -> String {
    let mut e = Echo::new();
    e.push_lossy(bytes);
    e.into_string()
}

/// Any displayable thing, cut while it is formatted.
pub fn echo_display(v: &dyn std::fmt::Display) -> String {
    let mut e = Echo::new();
    let _ = std::fmt::write(&mut e, format_args!("{v}"));
    e.into_string()
}

/// A JSON value as a reject shows it, cut while it is serialized.
pub(super) fn echo_json(v: &impl serde::Serialize) -> String {
    let mut e = Echo::new();
    let _ = serde_json::to_writer(&mut e, v);
    e.into_string()
}

pub(super) fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
