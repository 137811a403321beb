//! The hostile corpus: files built to hurt a reader (oversized headers,
//! lines, strings and quoted fields, gzip bombs, bad bytes, odd file
//! types), written at any size so that tests use small ones (with small
//! limits) and `tc-ingest bench hostile` big ones. Generators stream: the
//! process writing a 1 GB case stays small.

mod run;

pub use run::bench;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// One case: a name for reports, the file name it is dropped as, and how
/// it is made.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub file: &'static str,
    make: Make,
}

/// What a case is on disk.
#[derive(Debug, Clone, Copy)]
enum Make {
    /// A symbolic link to `/etc/passwd`.
    Symlink,
    /// A named pipe (FIFO).
    Fifo,
    /// A regular file of these contents.
    File(Content),
    /// A regular file of these contents, gzipped.
    Gzip(Content),
}

/// The contents of a regular file; sizes are functions of `big`, the size
/// that crosses the limits.
#[derive(Debug, Clone, Copy)]
enum Content {
    /// `head`, then `size(big)` bytes of `byte`, then `tail`.
    Run {
        head: &'static [u8],
        byte: u8,
        size: fn(u64) -> u64,
        tail: &'static [u8],
    },
    /// `head`, then lines of `line` until about `size(big)` bytes, then `tail`.
    Lines {
        head: &'static [u8],
        line: &'static [u8],
        size: fn(u64) -> u64,
        tail: &'static [u8],
    },
    /// These bytes.
    Bytes(&'static [u8]),
    /// Written by a function of `big`.
    Made(fn(&mut dyn Write, u64) -> io::Result<()>),
}

/// Every case, in the order the bench drops them.
pub const CASES: &[Case] = &[
    c(
        "csv header longer than the limit",
        "long-header.csv",
        Make::File(run(b"value,", b'h', |big| big, b"\n1.2.3.4,x\n")),
    ),
    c(
        "csv.gz: one header line of zeros (10x big)",
        "zeros.csv.gz",
        Make::Gzip(run(b"", b'0', |big| big * 10, b"\n")),
    ),
    c(
        "csv: unbalanced quote, then big/2 of lines",
        "open-quote.csv",
        Make::File(lines(
            b"value,description\n1.2.3.4,ok\n5.6.7.8,\"unbalanced\n",
            b"9.9.9.9,more text inside the quote",
            |big| big / 2,
            b"",
        )),
    ),
    c(
        "json: an element holding a big/2 string",
        "long-string.json",
        Make::File(run(
            b"[{\"value\": \"1.2.3.4\"},\n{\"value\": \"",
            b's',
            |big| big / 2,
            b"\"},\n{\"value\": \"5.6.7.8\"}]\n",
        )),
    ),
    c(
        "json: a big/2 key before the array",
        "long-key.json",
        Make::File(run(
            b"{\"",
            b'k',
            |big| big / 2,
            b"\": 1, \"indicators\": [\"1.2.3.4\"]}\n",
        )),
    ),
    c(
        "json: whitespace only (big/2)",
        "blank.json",
        Make::File(lines(b"", b"      ", |big| big / 2, b"")),
    ),
    c(
        "ndjson: one big/2 line",
        "long-line.ndjson",
        Make::File(run(
            b"{\"value\": \"1.2.3.4\"}\n{\"value\": \"",
            b'n',
            |big| big / 2,
            b"\"}\n{\"value\": \"5.6.7.8\"}\n",
        )),
    ),
    c(
        "text: one big/2 line",
        "long-line.txt",
        Make::File(run(b"1.2.3.4\n", b't', |big| big / 2, b"\n5.6.7.8\n")),
    ),
    c(
        "tags and descriptions with NUL",
        "nul-tags.csv",
        Make::File(Content::Bytes(
            b"value,tags,description,source\n\
              1.2.3.4,\"a\0b|\x01c\x7f\",\"line one\0\nline two\",feed\0x\n\
              5.6.7.8,\0,\0,\0\n",
        )),
    ),
    c(
        "NUL in values",
        "nul-values.txt",
        Make::File(Content::Bytes(
            b"1.2.3.4\0\nevil\0.example.com\n\0\n5.6.7.8\n",
        )),
    ),
    c(
        "invalid UTF-8",
        "invalid-utf8.txt",
        Make::File(Content::Bytes(
            b"1.2.3.4\n\xff\xfe\xfd\nevil.example.com\xc3\n5.6.7.8\n",
        )),
    ),
    c(
        "1,000,000 columns",
        "wide.csv",
        Make::File(Content::Made(wide)),
    ),
    c(
        "10,000-deep JSON",
        "deep.json",
        Make::File(Content::Made(deep)),
    ),
    c(
        "gzip bomb of one line (20x big)",
        "bomb.txt.gz",
        Make::Gzip(run(b"", 0, |big| big * 20, b"")),
    ),
    c(
        "gzip bomb of comment lines (2x big)",
        "bomb-lines.csv.gz",
        Make::Gzip(lines(
            b"value\n1.2.3.4\n",
            b"# a comment line, many times",
            |big| big * 2,
            b"5.6.7.8\n",
        )),
    ),
    c(
        "truncated gzip",
        "truncated.csv.gz",
        Make::File(Content::Made(truncated_gzip)),
    ),
    c("empty file", "empty.csv", Make::File(Content::Bytes(b""))),
    c(
        "header only",
        "header-only.csv",
        Make::File(Content::Bytes(b"value,tags\n")),
    ),
    c(
        "random bytes (big/10)",
        "random.dat",
        Make::File(Content::Made(random)),
    ),
    c("symlink", "link.csv", Make::Symlink),
    c("FIFO", "fifo.csv", Make::Fifo),
    c(
        "a well-formed CSV of big/100 rows",
        "valid.csv",
        Make::File(Content::Made(valid_csv)),
    ),
    c(
        "stix: a bundle cut off inside an object",
        "truncated-bundle.json",
        Make::File(Content::Bytes(
            b"{\"type\": \"bundle\", \"id\": \"bundle--1\", \"objects\": [\n\
              {\"type\": \"indicator\", \"id\": \"indicator--1\", \"pattern_type\": \"stix\", \"pattern\": \"[ipv4-addr:value = '198.51.100.1']\"},\n\
              {\"type\": \"indicator\", \"id\": \"indicator--2\", \"pattern\": \"[ipv4-a",
        )),
    ),
    c(
        "stix: an object without a type",
        "untyped.json",
        Make::File(Content::Bytes(
            b"{\"type\": \"bundle\", \"id\": \"bundle--1\", \"objects\": [\n\
              {\"id\": \"indicator--1\", \"pattern\": \"[ipv4-addr:value = '198.51.100.2']\"},\n\
              {\"type\": \"indicator\", \"id\": \"indicator--2\", \"pattern_type\": \"stix\", \"pattern\": \"[ipv4-addr:value = '198.51.100.3']\"}]}\n",
        )),
    ),
    c(
        "stix: a pattern string of big",
        "long-pattern.json",
        Make::File(run(
            b"{\"type\": \"bundle\", \"id\": \"bundle--1\", \"objects\": [\n\
              {\"type\": \"indicator\", \"id\": \"indicator--1\", \"pattern_type\": \"stix\", \"pattern\": \"[url:value = 'http://x.example/",
            b'p',
            |big| big,
            b"']\"},\n{\"type\": \"indicator\", \"id\": \"indicator--2\", \"pattern_type\": \"stix\", \"pattern\": \"[ipv4-addr:value = '198.51.100.4']\"}]}\n",
        )),
    ),
    c(
        "stix: a bundle of 4 x big / 40 tiny objects",
        "many-objects.json",
        Make::File(Content::Made(many_objects)),
    ),
    c(
        "misp: an event whose Attribute is not a list",
        "attribute-object.json",
        Make::File(Content::Bytes(
            b"{\"Event\": {\"info\": \"x\", \"Attribute\": {\"type\": \"ip-dst\", \"value\": \"198.51.100.5\", \"to_ids\": true},\n\
              \"Object\": [{\"name\": \"domain-ip\", \"Attribute\": [{\"type\": \"ip-dst\", \"value\": \"198.51.100.6\", \"to_ids\": true}]}]}}\n",
        )),
    ),
];

const fn c(name: &'static str, file: &'static str, make: Make) -> Case {
    Case { name, file, make }
}

/// [`Content::Run`], for the table.
const fn run(head: &'static [u8], byte: u8, size: fn(u64) -> u64, tail: &'static [u8]) -> Content {
    Content::Run {
        head,
        byte,
        size,
        tail,
    }
}

/// [`Content::Lines`], for the table.
const fn lines(
    head: &'static [u8],
    line: &'static [u8],
    size: fn(u64) -> u64,
    tail: &'static [u8],
) -> Content {
    Content::Lines {
        head,
        line,
        size,
        tail,
    }
}

impl Case {
    /// Writes the case into `dir` (as [`Case::file`]), with `big` bytes as
    /// the size that crosses the limits. Returns its path.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write(&self, dir: &Path, big: u64) -> io::Result<PathBuf> {
        let path = dir.join(self.file);
        match self.make {
            Make::Symlink => std::os::unix::fs::symlink("/etc/passwd", &path)?,
            Make::Fifo => mkfifo(&path)?,
            Make::File(content) => {
                let mut w = BufWriter::with_capacity(256 << 10, File::create(&path)?);
                content.write_to(&mut w, big)?;
                w.flush()?;
            }
            Make::Gzip(content) => {
                let mut w = BufWriter::with_capacity(256 << 10, File::create(&path)?);
                let mut gz = gzip(&mut w);
                content.write_to(&mut gz, big)?;
                gz.finish()?.flush()?;
            }
        }
        Ok(path)
    }
}

impl Content {
    /// Writes these contents into `w`, with `big` as the size that crosses
    /// the limits.
    fn write_to<W: Write>(self, w: &mut W, big: u64) -> io::Result<()> {
        match self {
            Content::Run {
                head,
                byte,
                size,
                tail,
            } => {
                w.write_all(head)?;
                repeat(w, byte, size(big))?;
                w.write_all(tail)
            }
            Content::Lines {
                head,
                line,
                size,
                tail,
            } => {
                w.write_all(head)?;
                repeat_line(w, line, size(big))?;
                w.write_all(tail)
            }
            Content::Bytes(bytes) => w.write_all(bytes),
            Content::Made(make) => make(w, big),
        }
    }
}

/// Makes a named pipe (FIFO) at `path`.
fn mkfifo(path: &Path) -> io::Result<()> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated path; mkfifo has no other precondition.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A CSV header of `value` and 1,000,000 columns, then one row.
fn wide(w: &mut dyn Write, _big: u64) -> io::Result<()> {
    w.write_all(b"value")?;
    for i in 0..1_000_000 {
        write!(w, ",c{}", i % 10)?;
    }
    w.write_all(b"\n1.2.3.4\n")
}

/// 10,000 nested JSON arrays.
fn deep(w: &mut dyn Write, _big: u64) -> io::Result<()> {
    repeat(w, b'[', 10_000)?;
    repeat(w, b']', 10_000)
}

/// A STIX bundle of tiny objects (about 40 bytes each) filling `4 * big`
/// bytes: 10 million objects at the bench's size.
fn many_objects(w: &mut dyn Write, big: u64) -> io::Result<()> {
    w.write_all(b"{\"type\": \"bundle\", \"id\": \"bundle--1\", \"objects\": [")?;
    let (mut written, mut i) = (0u64, 0u64);
    while written < 4 * big {
        let sep = if i == 0 { "" } else { "," };
        let obj = format!("{sep}{{\"type\":\"x-tiny\",\"id\":\"x-tiny--{i}\"}}\n");
        w.write_all(obj.as_bytes())?;
        written += obj.len() as u64;
        i += 1;
    }
    w.write_all(b"]}\n")
}

/// The first half of a gzipped CSV of 2,000 rows.
fn truncated_gzip(w: &mut dyn Write, _big: u64) -> io::Result<()> {
    let mut body = Vec::new();
    {
        let mut gz = gzip(&mut body);
        gz.write_all(b"value\n")?;
        for i in 0..2000 {
            writeln!(gz, "10.0.{}.{}", i / 250, i % 250)?;
        }
        gz.finish()?;
    }
    w.write_all(&body[..body.len() / 2])
}

/// `big / 10` random bytes (seeded: the same every run).
fn random(w: &mut dyn Write, big: u64) -> io::Result<()> {
    let mut rng = fastrand::Rng::with_seed(13);
    let mut block = vec![0u8; 64 << 10];
    let mut left = big / 10;
    while left > 0 {
        rng.fill(&mut block);
        let n = left.min(block.len() as u64) as usize;
        w.write_all(&block[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// A well-formed CSV of `big / 100` rows (at least 10) of the bench corpus.
fn valid_csv(w: &mut dyn Write, big: u64) -> io::Result<()> {
    w.write_all(b"indicator,rating,tags\n")?;
    let rows = (big / 100).max(10) as usize;
    let mut done = 0;
    let mut seed = 1;
    while done < rows {
        let block = (rows - done).min(100_000);
        for (i, v) in super::corpus(block, seed).iter().enumerate() {
            writeln!(
                w,
                "\"{}\",{},hostile|r{}",
                v.replace('"', "\"\""),
                i % 6,
                i % 7
            )?;
        }
        done += block;
        seed += 1;
    }
    Ok(())
}

fn gzip<W: Write>(w: W) -> flate2::write::GzEncoder<W> {
    flate2::write::GzEncoder::new(w, flate2::Compression::fast())
}

/// `n` bytes of `b`, written in blocks.
fn repeat<W: Write + ?Sized>(w: &mut W, b: u8, n: u64) -> io::Result<()> {
    let block = [b; 64 << 10];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len() as u64) as usize;
        w.write_all(&block[..k])?;
        left -= k as u64;
    }
    Ok(())
}

/// Lines of `line` until about `n` bytes.
fn repeat_line<W: Write + ?Sized>(w: &mut W, line: &[u8], n: u64) -> io::Result<()> {
    let mut written = 0;
    while written < n {
        w.write_all(line)?;
        w.write_all(b"\n")?;
        written += line.len() as u64 + 1;
    }
    Ok(())
}
