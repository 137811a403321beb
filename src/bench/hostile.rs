//! The hostile corpus: files built to hurt a reader (oversized headers,
//! lines, strings and quoted fields, gzip bombs, bad bytes, odd file
//! types), written at any size so that tests use small ones (with small
//! limits) and `tc-ingest bench hostile` big ones. Generators stream: the
//! process writing a 1 GB case stays small.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
        "stix: a pattern string of big/2",
        "long-pattern.json",
        Make::File(run(
            b"{\"type\": \"bundle\", \"id\": \"bundle--1\", \"objects\": [\n\
              {\"type\": \"indicator\", \"id\": \"indicator--1\", \"pattern_type\": \"stix\", \"pattern\": \"[url:value = 'http://x.example/",
            b'p',
            |big| big / 2,
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

/// `tc-ingest bench hostile`: starts the daemon (this binary, `run`) with
/// the default limits, drops every case into its `watch.dir` one at a time
/// (renamed in, so taken at once), and measures the daemon's peak resident
/// size while it handles each (VmHWM, reset before each case through
/// `/proc/<pid>/clear_refs`) and its resident size once it is idle again.
///
/// # Errors
/// When the daemon cannot be started or a case cannot be written.
pub async fn bench(big: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let staging = root.join("staging");
    std::fs::create_dir_all(&staging)?;
    let mut daemon = start_daemon(root)?;
    let pid = daemon.id();
    wait_for_dir(&root.join("failed")).await;
    print_header(big, pid);
    let mut worst = 0f64;
    for case in CASES {
        let staged = case.write(&staging, big)?;
        worst = worst.max(measure(&mut daemon, root, case, &staged).await?);
    }
    let log = std::fs::read(root.join("daemon.log"))?;
    let longest = log
        .split(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    println!(
        "  worst peak RSS: {worst:.0} MiB; longest log line: {longest} bytes; daemon still running: {}",
        daemon.try_wait()?.is_none()
    );
    // SAFETY: kill(2) on the child we started; no memory is touched.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    Ok(())
}

/// Writes the daemon's configuration into `root` (its `watch.dir` and queue
/// there, default limits) and starts it, its log in `root/daemon.log`.
fn start_daemon(root: &Path) -> anyhow::Result<std::process::Child> {
    use anyhow::Context;
    let config = root.join("tc-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"http://127.0.0.1:9\"\naccess_id = \"bench\"\nsecret_key = \"bench\"\n\
             owner = \"Bench Org\"\n[watch]\ndir = \"{0}/incoming\"\nsettle_ms = 200\nrescan_secs = 1\n\
             [queue]\npath = \"{0}/queue.db\"\n",
            root.display()
        ),
    )?;
    let log = File::create(root.join("daemon.log"))?;
    std::process::Command::new(std::env::current_exe()?)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the daemon")
}

/// Waits (at most 30 s) until the daemon has made `dir`, then half a second more.
async fn wait_for_dir(dir: &Path) {
    let started = Instant::now();
    while !dir.is_dir() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The bench's title, the CPU, the idle daemon's size and the table's header.
fn print_header(big: u64, pid: u32) {
    println!(
        "bench hostile: each case dropped into a running daemon (default limits: \
         max_line_bytes 1 MiB, max_decompressed_bytes 8 GiB), big = {} MB",
        big / 1_000_000
    );
    println!("  CPU: {}", cpu_model());
    println!(
        "  idle before the first case: RSS {:.0} MiB",
        status_mib(pid, "VmRSS:")
    );
    println!(
        "  {:<46} {:>10} {:>8} {:>10} {:>9} {:>7}",
        "case", "size", "ended", "peak MiB", "idle MiB", "secs"
    );
}

/// Drops the `staged` case into the daemon's `watch.dir`, waits for it to
/// end and prints its row. Returns the daemon's peak RSS (MiB) meanwhile.
async fn measure(
    daemon: &mut std::process::Child,
    root: &Path,
    case: &Case,
    staged: &Path,
) -> anyhow::Result<f64> {
    let pid = daemon.id();
    let size = std::fs::symlink_metadata(staged)?.len();
    // Peak since now: writing 5 to clear_refs resets VmHWM.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let start = Instant::now();
    std::fs::rename(staged, root.join("incoming").join(case.file))?;
    let ended = wait_for_end(daemon, root, case, start).await?;
    let secs = start.elapsed().as_secs_f64();
    let peak = status_mib(pid, "VmHWM:");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = status_mib(pid, "VmRSS:");
    println!(
        "  {:<46} {:>10} {:>8} {:>10.0} {:>9.0} {:>7.1}",
        case.name,
        human(size),
        ended,
        peak,
        idle,
        secs
    );
    Ok(peak)
}

/// How the case ended (`done`, `failed`, or `timeout` 600 s after
/// `start`), polling `root/done` and `root/failed`.
///
/// # Errors
/// When the daemon exits meanwhile.
async fn wait_for_end(
    daemon: &mut std::process::Child,
    root: &Path,
    case: &Case,
    start: Instant,
) -> anyhow::Result<&'static str> {
    let (done, failed) = (root.join("done"), root.join("failed"));
    while start.elapsed() < Duration::from_secs(600) {
        if let Some(status) = daemon.try_wait()? {
            anyhow::bail!("the daemon exited ({status}) on case {:?}", case.name);
        }
        if landed(&failed, case.file) {
            return Ok("failed");
        }
        if landed(&done, case.file) {
            return Ok("done");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok("timeout")
}

/// Whether `dir` holds the case (under its name, or stamped `...Z-name`).
fn landed(dir: &Path, file: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n == file || n.ends_with(&format!("Z-{file}"))
        })
    })
}

/// A field of `/proc/<pid>/status` in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.0} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
