//! The hostile corpus: files built to hurt a reader (oversized headers,
//! lines, strings and quoted fields, gzip bombs, bad bytes, odd file
//! types), written at any size so that tests use small ones (with small
//! limits) and `tc-ingest bench hostile` big ones. Generators stream: the
//! process writing a 1 GB case stays small.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// One case: a name for reports and the file name it is dropped as.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub file: &'static str,
}

/// Every case, in the order the bench drops them.
pub const CASES: &[Case] = &[
    c("csv header longer than the limit", "long-header.csv"),
    c("csv.gz: one header line of zeros (10x big)", "zeros.csv.gz"),
    c(
        "csv: unbalanced quote, then big/2 of lines",
        "open-quote.csv",
    ),
    c(
        "json: an element holding a big/2 string",
        "long-string.json",
    ),
    c("json: a big/2 key before the array", "long-key.json"),
    c("json: whitespace only (big/2)", "blank.json"),
    c("ndjson: one big/2 line", "long-line.ndjson"),
    c("text: one big/2 line", "long-line.txt"),
    c("tags and descriptions with NUL", "nul-tags.csv"),
    c("NUL in values", "nul-values.txt"),
    c("invalid UTF-8", "invalid-utf8.txt"),
    c("1,000,000 columns", "wide.csv"),
    c("10,000-deep JSON", "deep.json"),
    c("gzip bomb of one line (20x big)", "bomb.txt.gz"),
    c("gzip bomb of comment lines (2x big)", "bomb-lines.csv.gz"),
    c("truncated gzip", "truncated.csv.gz"),
    c("empty file", "empty.csv"),
    c("header only", "header-only.csv"),
    c("random bytes (big/10)", "random.dat"),
    c("symlink", "link.csv"),
    c("FIFO", "fifo.csv"),
    c("a well-formed CSV of big/100 rows", "valid.csv"),
];

const fn c(name: &'static str, file: &'static str) -> Case {
    Case { name, file }
}

impl Case {
    /// Writes the case into `dir` (as [`Case::file`]), with `big` bytes as
    /// the size that crosses the limits. Returns its path.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write(&self, dir: &Path, big: u64) -> io::Result<PathBuf> {
        let path = dir.join(self.file);
        match self.file {
            "link.csv" => {
                std::os::unix::fs::symlink("/etc/passwd", &path)?;
                return Ok(path);
            }
            "fifo.csv" => {
                let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                    .map_err(io::Error::other)?;
                // SAFETY: a valid NUL-terminated path; mkfifo has no other precondition.
                if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                return Ok(path);
            }
            _ => {}
        }
        let mut w = BufWriter::with_capacity(256 << 10, File::create(&path)?);
        match self.file {
            "long-header.csv" => {
                w.write_all(b"value,")?;
                repeat(&mut w, b'h', big)?;
                w.write_all(b"\n1.2.3.4,x\n")?;
            }
            "zeros.csv.gz" => {
                let mut gz = gzip(w);
                repeat(&mut gz, b'0', big * 10)?;
                gz.write_all(b"\n")?;
                gz.finish()?.flush()?;
                return Ok(path);
            }
            "open-quote.csv" => {
                w.write_all(b"value,description\n1.2.3.4,ok\n5.6.7.8,\"unbalanced\n")?;
                repeat_line(&mut w, b"9.9.9.9,more text inside the quote", big / 2)?;
            }
            "long-string.json" => {
                w.write_all(b"[{\"value\": \"1.2.3.4\"},\n{\"value\": \"")?;
                repeat(&mut w, b's', big / 2)?;
                w.write_all(b"\"},\n{\"value\": \"5.6.7.8\"}]\n")?;
            }
            "long-key.json" => {
                w.write_all(b"{\"")?;
                repeat(&mut w, b'k', big / 2)?;
                w.write_all(b"\": 1, \"indicators\": [\"1.2.3.4\"]}\n")?;
            }
            "blank.json" => repeat_line(&mut w, b"      ", big / 2)?,
            "long-line.ndjson" => {
                w.write_all(b"{\"value\": \"1.2.3.4\"}\n{\"value\": \"")?;
                repeat(&mut w, b'n', big / 2)?;
                w.write_all(b"\"}\n{\"value\": \"5.6.7.8\"}\n")?;
            }
            "long-line.txt" => {
                w.write_all(b"1.2.3.4\n")?;
                repeat(&mut w, b't', big / 2)?;
                w.write_all(b"\n5.6.7.8\n")?;
            }
            "nul-tags.csv" => w.write_all(
                b"value,tags,description,source\n\
                  1.2.3.4,\"a\0b|\x01c\x7f\",\"line one\0\nline two\",feed\0x\n\
                  5.6.7.8,\0,\0,\0\n",
            )?,
            "nul-values.txt" => w.write_all(b"1.2.3.4\0\nevil\0.example.com\n\0\n5.6.7.8\n")?,
            "invalid-utf8.txt" => {
                w.write_all(b"1.2.3.4\n\xff\xfe\xfd\nevil.example.com\xc3\n5.6.7.8\n")?
            }
            "wide.csv" => {
                w.write_all(b"value")?;
                for i in 0..1_000_000 {
                    write!(w, ",c{}", i % 10)?;
                }
                w.write_all(b"\n1.2.3.4\n")?;
            }
            "deep.json" => {
                repeat(&mut w, b'[', 10_000)?;
                repeat(&mut w, b']', 10_000)?;
            }
            "bomb.txt.gz" => {
                let mut gz = gzip(w);
                repeat(&mut gz, 0, big * 20)?;
                gz.finish()?.flush()?;
                return Ok(path);
            }
            "bomb-lines.csv.gz" => {
                let mut gz = gzip(w);
                gz.write_all(b"value\n1.2.3.4\n")?;
                repeat_line(&mut gz, b"# a comment line, many times", big * 2)?;
                gz.write_all(b"5.6.7.8\n")?;
                gz.finish()?.flush()?;
                return Ok(path);
            }
            "truncated.csv.gz" => {
                let mut body = Vec::new();
                {
                    let mut gz = gzip(&mut body);
                    gz.write_all(b"value\n")?;
                    for i in 0..2000 {
                        writeln!(gz, "10.0.{}.{}", i / 250, i % 250)?;
                    }
                    gz.finish()?;
                }
                w.write_all(&body[..body.len() / 2])?;
            }
            "empty.csv" => {}
            "header-only.csv" => w.write_all(b"value,tags\n")?,
            "random.dat" => {
                let mut rng = fastrand::Rng::with_seed(13);
                let mut block = vec![0u8; 64 << 10];
                let mut left = big / 10;
                while left > 0 {
                    rng.fill(&mut block);
                    let n = left.min(block.len() as u64) as usize;
                    w.write_all(&block[..n])?;
                    left -= n as u64;
                }
            }
            "valid.csv" => {
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
            }
            other => return Err(io::Error::other(format!("no case writes {other}"))),
        }
        w.flush()?;
        Ok(path)
    }
}

fn gzip<W: Write>(w: W) -> flate2::write::GzEncoder<W> {
    flate2::write::GzEncoder::new(w, flate2::Compression::fast())
}

/// `n` bytes of `b`, written in blocks.
fn repeat(w: &mut impl Write, b: u8, n: u64) -> io::Result<()> {
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
fn repeat_line(w: &mut impl Write, line: &[u8], n: u64) -> io::Result<()> {
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
    use anyhow::Context;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let staging = root.join("staging");
    std::fs::create_dir_all(&staging)?;
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
    let mut daemon = std::process::Command::new(std::env::current_exe()?)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the daemon")?;
    let pid = daemon.id();
    let incoming = root.join("incoming");
    let (done, failed) = (root.join("done"), root.join("failed"));
    let started = Instant::now();
    while !failed.is_dir() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
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
    let mut worst = 0f64;
    for case in CASES {
        let staged = case.write(&staging, big)?;
        let size = std::fs::symlink_metadata(&staged)?.len();
        // Peak since now: writing 5 to clear_refs resets VmHWM.
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        let start = Instant::now();
        std::fs::rename(&staged, incoming.join(case.file))?;
        let mut ended = "timeout";
        while start.elapsed() < Duration::from_secs(600) {
            if let Some(status) = daemon.try_wait()? {
                anyhow::bail!("the daemon exited ({status}) on case {:?}", case.name);
            }
            if landed(&failed, case.file) {
                ended = "failed";
                break;
            }
            if landed(&done, case.file) {
                ended = "done";
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        let peak = status_mib(pid, "VmHWM:");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = status_mib(pid, "VmRSS:");
        worst = worst.max(peak);
        println!(
            "  {:<46} {:>10} {:>8} {:>10.0} {:>9.0} {:>7.1}",
            case.name,
            human(size),
            ended,
            peak,
            idle,
            secs
        );
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
