//! `tc-ingest bench formats` and `bench lists`. Formats: the same `n`
//! indicators as a CSV, a STIX 2.1
//! bundle (an indicator object each, with a TLP marking, an identity and
//! the marking definition after them) and a MISP event (an attribute each,
//! the event's tags after its attributes, as MISP writes them), each taken
//! from the watched directory into a fresh queue in turn, in one run.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// One value of each kind in turn: the STIX path, the MISP type, the
/// ThreatConnect type, the value.
fn value(i: usize) -> (&'static str, &'static str, &'static str, String) {
    let h = |width: usize| {
        format!(
            "{:0width$x}",
            (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )
    };
    match i % 6 {
        0 => (
            "ipv4-addr:value",
            "ip-dst",
            "Address",
            format!(
                "{}.{}.{}.{}",
                11 + i % 200,
                (i >> 8) % 256,
                (i >> 16) % 256,
                i % 256
            ),
        ),
        1 => (
            "domain-name:value",
            "domain",
            "Host",
            format!("host{i}.example.com"),
        ),
        2 => (
            "url:value",
            "url",
            "URL",
            format!("http://site{i}.example.net/path/{i}"),
        ),
        3 => ("file:hashes.'SHA-256'", "sha256", "File", h(64)),
        4 => ("file:hashes.MD5", "md5", "File", h(32)),
        _ => (
            "email-addr:value",
            "email-dst",
            "EmailAddress",
            format!("user{i}@example.org"),
        ),
    }
}

const AMBER: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";

fn write_csv(path: &Path, n: usize) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "indicator,type,tags,description,security_label")?;
    for i in 0..n {
        let (_, _, kind, v) = value(i);
        writeln!(w, "{v},{kind},bench|row{},indicator {i},TLP:AMBER", i % 13)?;
    }
    w.flush()
}

fn write_stix(path: &Path, n: usize) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        w,
        "{{\"type\": \"bundle\", \"id\": \"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d\", \"objects\": ["
    )?;
    for i in 0..n {
        let (path, _, _, v) = value(i);
        writeln!(
            w,
            "{{\"type\": \"indicator\", \"spec_version\": \"2.1\", \"id\": \"indicator--00000000-0000-4000-8000-{i:012x}\", \
             \"created\": \"2026-01-01T00:00:00.000Z\", \"modified\": \"2026-01-01T00:00:00.000Z\", \
             \"name\": \"indicator {i}\", \"pattern\": \"[{path} = '{v}']\", \"pattern_type\": \"stix\", \
             \"valid_from\": \"2026-01-01T00:00:00Z\", \"labels\": [\"bench\", \"row{}\"], \
             \"created_by_ref\": \"identity--8ec1b8e7-6b4d-4c6e-9d4b-0ad1e1e1c0de\", \"object_marking_refs\": [\"{AMBER}\"]}},",
            i % 13
        )?;
    }
    writeln!(
        w,
        "{{\"type\": \"identity\", \"spec_version\": \"2.1\", \"id\": \"identity--8ec1b8e7-6b4d-4c6e-9d4b-0ad1e1e1c0de\", \
         \"created\": \"2026-01-01T00:00:00.000Z\", \"modified\": \"2026-01-01T00:00:00.000Z\", \"name\": \"Bench CERT\"}}]}}"
    )?;
    w.flush()
}

fn write_misp(path: &Path, n: usize) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        w,
        "{{\"Event\": {{\"uuid\": \"5d0092c5-5f74-4287-9642-33f4c354e56d\", \"threat_level_id\": \"2\", \"Attribute\": ["
    )?;
    for i in 0..n {
        let (_, kind, _, v) = value(i);
        let sep = if i + 1 < n { "," } else { "" };
        writeln!(
            w,
            "{{\"uuid\": \"00000000-0000-4000-8000-{i:012x}\", \"type\": \"{kind}\", \"category\": \"Network activity\", \
             \"value\": \"{v}\", \"to_ids\": true, \"comment\": \"indicator {i}\", \"timestamp\": \"1767225600\", \
             \"Tag\": [{{\"name\": \"row{}\"}}]}}{sep}",
            i % 13
        )?;
    }
    writeln!(
        w,
        "], \"info\": \"bench\", \"Orgc\": {{\"name\": \"Bench CERT\"}}, \"Tag\": [{{\"name\": \"tlp:amber\"}}, {{\"name\": \"bench\"}}]}}}}"
    )?;
    w.flush()
}

/// Resets the process's peak RSS (Linux: `5` to `clear_refs`), so that
/// each format's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

type Writer = fn(&Path, usize) -> std::io::Result<()>;

/// # Errors
/// When a temporary directory or the queue cannot be set up.
pub async fn bench(n: usize) -> anyhow::Result<()> {
    println!(
        "formats: the same {n} indicators (6 types, a tag, a description, TLP:AMBER each), file to queued"
    );
    compare(
        n,
        &[
            ("csv", "feed.csv", write_csv),
            ("stix", "bundle.json", write_stix),
            ("misp", "event.json", write_misp),
        ],
    )
    .await
}

/// `tc-ingest bench lists`: the same networks as a plain list and as
/// Spamhaus DROP publishes it (`;` comment lines, `cidr ; SBLnnn`).
///
/// # Errors
/// As [`bench`].
pub async fn lists(n: usize) -> anyhow::Result<()> {
    println!("lists: the same {n} networks as a plain list and DROP-style, file to queued");
    compare(
        n,
        &[
            ("plain", "plain.txt", write_plain),
            ("drop", "drop.txt", write_drop),
        ],
    )
    .await
}

/// The `i`th of the bench's networks.
fn network(i: usize) -> String {
    format!(
        "{}.{}.{}.0/24",
        11 + (i >> 16) % 200,
        (i >> 8) % 256,
        i % 256
    )
}

fn write_plain(path: &Path, n: usize) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(w, "{}", network(i))?;
    }
    w.flush()
}

fn write_drop(path: &Path, n: usize) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        w,
        "; Spamhaus DROP List 2026/12/01 - (c) 2026 bench\n; Last-Modified: Tue, 01 Dec 2026 00:00:00 GMT\n; Expires: Tue, 01 Dec 2026 01:00:00 GMT"
    )?;
    for i in 0..n {
        writeln!(w, "{} ; SBL{}", network(i), 100_000 + i)?;
    }
    w.flush()
}

/// Each of `formats` written with `n` rows and taken from `watch.dir` into
/// a fresh queue in turn; rows/s against the first, peak RSS of each.
async fn compare(n: usize, formats: &[(&str, &str, Writer)]) -> anyhow::Result<()> {
    let mut first_rate = 0.0;
    for &(name, file, write) in formats {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("incoming"))?;
        write(&root.join("incoming").join(file), n)?;
        let size = std::fs::metadata(root.join("incoming").join(file))?.len();
        let (mut intake, q, _cfg) = super::intake_at(root, std::sync::Arc::default()).await?;
        reset_peak_rss();
        let start = Instant::now();
        let out = intake
            .scan(&tokio_util::sync::CancellationToken::new(), false)
            .await?;
        let secs = start.elapsed().as_secs_f64();
        let rate = n as f64 / secs;
        if first_rate == 0.0 {
            first_rate = rate;
        }
        let f = &out[0];
        println!(
            "  {name:<5} {:>6.0} MB: {} queued, {} rejected in {secs:.2} s: {rate:.0} rows/s ({:.2} of the first), peak RSS {:.0} MiB",
            size as f64 / 1e6,
            f.queued,
            f.rejected,
            rate / first_rate,
            super::peak_rss_mib()
        );
        q.close().await;
    }
    Ok(())
}
