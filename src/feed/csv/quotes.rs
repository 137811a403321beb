//! Spaces between a delimiter and an opening quote, left out before the
//! CSV parser sees them.

use std::io::BufRead;

/// The input with the spaces between a delimiter and an opening quote
/// left out (`"a", "b, c"`, as ThreatFox writes): a CSV parser takes a
/// quote only at a field's first byte. Spaces anywhere else are kept.
pub(super) struct QuoteAfterSpace<R> {
    inner: R,
    delimiter: u8,
    in_quotes: bool,
    /// Spaces after a delimiter, not yet known to precede a quote.
    held: usize,
    after_delimiter: bool,
}

impl<R: BufRead> QuoteAfterSpace<R> {
    pub(super) fn new(inner: R, delimiter: u8) -> Self {
        Self {
            inner,
            delimiter,
            in_quotes: false,
            held: 0,
            after_delimiter: false,
        }
    }
}

impl<R: BufRead> std::io::Read for QuoteAfterSpace<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                // Spaces at the end of the input are kept.
                let k = self.held.min(out.len());
                out[..k].fill(b' ');
                self.held -= k;
                return Ok(k);
            }
            let (mut i, mut n) = (0, 0);
            while i < buf.len() && n < out.len() {
                let b = buf[i];
                if !self.in_quotes && self.after_delimiter && b == b' ' {
                    self.held += 1;
                    i += 1;
                    continue;
                }
                if self.held > 0 {
                    if b == b'"' && !self.in_quotes {
                        self.held = 0;
                    } else {
                        // Not before a quote: the spaces were the field's.
                        let k = self.held.min(out.len() - n);
                        out[n..n + k].fill(b' ');
                        self.held -= k;
                        n += k;
                        if self.held > 0 {
                            break;
                        }
                        self.after_delimiter = false;
                        continue;
                    }
                }
                self.after_delimiter = !self.in_quotes && b == self.delimiter;
                if b == b'"' {
                    self.in_quotes = !self.in_quotes;
                }
                out[n] = b;
                n += 1;
                i += 1;
            }
            self.inner.consume(i);
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
        }
    }
}
