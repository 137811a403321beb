//! `tc-ingest bench`: the measurements behind the README's performance
//! figures. Each prints what it measured and how; none asserts anything.

pub mod allowlist;
pub mod formats;
pub mod hostile;
pub mod page;
pub mod reconcile;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::BenchKind;
use crate::config::DeliveryMode;
use crate::indicator::Payload;
use crate::queue::{JobState, JobUpdate, Lease, NewJob, Queue};

/// `bench deliver --mode`: one delivery mode against the simulator.
#[derive(Debug, Clone, Copy)]
pub struct ModeRun {
    pub mode: Option<DeliveryMode>,
    pub latency_ms: u64,
    /// The simulator's batch processing rate, items/s.
    pub batch_rate: u64,
}

/// # Errors
/// When a temporary directory, the queue or the simulator cannot be set up.
pub async fn run(
    which: BenchKind,
    n: Option<u64>,
    rate: Option<u32>,
    seconds: u64,
    modes: ModeRun,
) -> anyhow::Result<u8> {
    match (which, modes.mode) {
        (BenchKind::Normalize, _) => normalize(n.unwrap_or(1_000_000) as usize),
        (BenchKind::Queue, _) => queue(n.unwrap_or(200_000) as usize).await?,
        (BenchKind::Intake, _) => intake(n.unwrap_or(1_000_000) as usize).await?,
        (BenchKind::Deliver, None) => deliver(n, rate.unwrap_or(0), seconds).await?,
        (BenchKind::Hostile, _) => hostile::bench(n.unwrap_or(100_000_000)).await?,
        (BenchKind::Formats, _) => formats::bench(n.unwrap_or(1_000_000) as usize).await?,
        (BenchKind::Lists, _) => formats::lists(n.unwrap_or(1_000_000) as usize).await?,
        (BenchKind::Allowlist, _) => allowlist::bench(n.unwrap_or(1_000_000) as usize).await?,
        (BenchKind::Reconcile, _) => reconcile::bench(n.unwrap_or(1_000_000) as usize).await?,
        (BenchKind::Page, _) => page::bench(n.unwrap_or(1_000_000) as usize).await?,
        (BenchKind::Deliver, Some(mode)) => {
            let n = n.unwrap_or(20_000) as usize;
            deliver_mode(mode, n, rate.unwrap_or(20), modes).await?;
        }
    }
    Ok(0)
}

/// A deterministic mixed corpus: every detectable type, 10% defanged, 5% invalid.
pub fn corpus(n: usize, seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let hex = |len: usize, rng: &mut fastrand::Rng| -> String {
        (0..len)
            .map(|_| char::from_digit(rng.u32(0..16), 16).expect("hex digit"))
            .collect()
    };
    (0..n)
        .map(|i| {
            let roll = rng.u32(0..100);
            if roll < 5 {
                return match i % 3 {
                    0 => format!("0{}.1.1.1", rng.u8(10..99)),
                    1 => format!("not an indicator {i}"),
                    _ => format!("10.{}.2.3/8", rng.u8(0..255)),
                };
            }
            let defang = roll < 15;
            let v = match i % 10 {
                0 => format!(
                    "{}.{}.{}.{}",
                    rng.u8(1..224),
                    rng.u8(..),
                    rng.u8(..),
                    rng.u8(..)
                ),
                1 => format!("2001:DB8:{:x}:0:0:0:0:{:x}", rng.u16(..), rng.u16(..)),
                2 => format!("evil-{}.Example{}.com", rng.u32(..), i % 7),
                3 => format!(
                    "http://Host{}.example.net/path/{}?q={i}",
                    rng.u16(..),
                    rng.u32(..)
                ),
                4 => format!("user{}@Mail{}.example.org", rng.u16(..), i % 5),
                5 => hex(32, &mut rng),
                6 => hex(64, &mut rng),
                7 => format!("AS {}", rng.u32(1..400_000)),
                8 => format!("10.{}.{}.0/24", rng.u8(..), rng.u8(..)),
                _ => format!("HKLM\\Software\\Vendor{}\\Run", rng.u16(..)),
            };
            if defang {
                v.replacen("http://", "hxxp://", 1)
                    .replace(".com", "[.]com")
                    .replace(".org", "[.]org")
                    .replace(".net", "[.]net")
            } else {
                v
            }
        })
        .collect()
}

fn normalize(n: usize) {
    let values = corpus(n, 7);
    let start = Instant::now();
    let mut accepted = 0usize;
    for v in &values {
        if crate::normalize::value(v, None).is_ok() {
            accepted += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("normalize: {n} values (all types, 10% defanged, 5% invalid) on one core");
    println!("  {accepted} accepted, {} rejected", n - accepted);
    println!("  {:.3} s, {:.0} values/s", secs, n as f64 / secs);
}

fn jobs(n: usize) -> Vec<NewJob> {
    corpus(n, 11)
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            crate::normalize::value(v, None)
                .ok()
                .map(|indicator| NewJob {
                    owner: "Bench Org".into(),
                    indicator,
                    payload: Payload {
                        rating: Some(3.0),
                        confidence: Some(50),
                        tags: vec!["bench".into()],
                        attributes: Vec::new(),
                        ..Payload::default()
                    },
                    line: Some(i as u64 + 1),
                })
        })
        .collect()
}

async fn queue(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    let q = Queue::open(&path).await?;
    let jobs = jobs(n);
    let n = jobs.len();
    let start = Instant::now();
    let mut queued = 0;
    for chunk in jobs.chunks(crate::intake::CHUNK_ROWS) {
        queued += q
            .commit_chunk(
                None,
                chunk,
                &[],
                chunk.len() as u64,
                0,
                Duration::from_secs(86_400),
            )
            .await?
            .queued;
    }
    let enqueue = start.elapsed().as_secs_f64();
    q.checkpoint().await?;
    let size = std::fs::metadata(&path)?.len();
    let start = Instant::now();
    let mut done = 0;
    loop {
        let claimed = q
            .claim(
                256,
                Duration::from_secs(60),
                &crate::queue::BatchOwners::None,
            )
            .await?;
        if claimed.is_empty() {
            break;
        }
        let updates: Vec<(Lease, JobUpdate)> = claimed
            .iter()
            .map(|j| (j.lease, JobUpdate::Delivered))
            .collect();
        q.apply(&updates, Duration::from_secs(60)).await?;
        done += claimed.len();
    }
    let cycle = start.elapsed().as_secs_f64();
    println!(
        "queue: {n} jobs (synchronous=FULL, WAL) in {}",
        path.display()
    );
    println!(
        "  enqueue: {queued} in {enqueue:.2} s = {:.0} jobs/s (chunks of {})",
        queued as f64 / enqueue,
        crate::intake::CHUNK_ROWS
    );
    println!(
        "  claim+complete: {done} in {cycle:.2} s = {:.0} jobs/s (claims of 256)",
        done as f64 / cycle
    );
    println!(
        "  database size: {} bytes = {:.0} bytes/job",
        size,
        size as f64 / queued.max(1) as f64
    );
    Ok(())
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// An intake of `root/incoming` into a fresh queue `root/queue.db`, with
/// the default limits and `allowlist`; the queue and the config's sender,
/// to keep.
async fn intake_at(
    root: &std::path::Path,
    allowlist: Arc<crate::lifecycle::Allowlist>,
) -> anyhow::Result<(
    crate::intake::Intake,
    Queue,
    tokio::sync::watch::Sender<Arc<crate::config::Config>>,
)> {
    let config = format!(
        "[api]\nbase_url = \"http://127.0.0.1:9\"\naccess_id = \"bench\"\nsecret_key = \"bench\"\nowner = \"Bench Org\"\n\
         [watch]\ndir = \"{0}/incoming\"\n[queue]\npath = \"{0}/queue.db\"\n",
        root.display()
    );
    let cfg = crate::config::Config::parse(&config, &root.join("c.toml"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::intake::create_dirs(&cfg.watch)?;
    let q = Queue::open(&cfg.queue.path).await?;
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(cfg));
    let (_, allowlist) = tokio::sync::watch::channel(allowlist);
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let intake = crate::intake::Intake::new(rx, allowlist, q.clone(), metrics);
    Ok((intake, q, tx))
}

async fn intake(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let incoming = root.join("incoming");
    std::fs::create_dir_all(&incoming)?;
    let feed = incoming.join("big.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&feed)?);
        writeln!(w, "indicator,rating,confidence,tags")?;
        // Written in blocks so the generator itself stays small in memory.
        let mut written = 0;
        let mut seed = 1;
        while written < n {
            let block = (n - written).min(100_000);
            for (i, v) in corpus(block, seed).iter().enumerate() {
                writeln!(
                    w,
                    "\"{}\",{},{},bench|row{}",
                    v.replace('"', "\"\""),
                    i % 6,
                    (i * 7) % 101,
                    i % 13
                )?;
            }
            written += block;
            seed += 1;
        }
    }
    let size = std::fs::metadata(&feed)?.len();
    let (mut intake, _q, _cfg) = intake_at(root, Arc::default()).await?;
    let rss_before = peak_rss_mib();
    let start = Instant::now();
    let out = intake
        .scan(&tokio_util::sync::CancellationToken::new(), false)
        .await?;
    let secs = start.elapsed().as_secs_f64();
    let f = &out[0];
    println!(
        "intake: a {n}-row mixed CSV ({:.0} MB) dropped into watch.dir",
        size as f64 / 1e6
    );
    println!(
        "  {} queued, {} duplicate, {} rejected: fully queued and moved to done/ in {secs:.2} s ({:.0} rows/s)",
        f.queued,
        f.duplicates,
        f.rejected,
        n as f64 / secs
    );
    println!(
        "  peak RSS of the process: {:.0} MiB (before reading: {rss_before:.0} MiB)",
        peak_rss_mib()
    );
    Ok(())
}

async fn deliver(n: Option<u64>, rate: u32, seconds: u64) -> anyhow::Result<()> {
    let sim = crate::sim::Simulator::start_local(crate::sim::SimConfig::default()).await?;
    let dir = tempfile::tempdir()?;
    let n = n.unwrap_or(if rate == 0 {
        30_000
    } else {
        u64::from(rate) * seconds * 6 / 5
    }) as usize;
    let delivery = format!(
        "[delivery]\nworkers = 32\nrate_per_second = {rate}\nburst = {}\n",
        (rate / 20).max(1)
    );
    let daemon = start_daemon(&sim, dir.path(), &delivery).await?;
    let mut all = jobs(n);
    for j in &mut all {
        j.owner = "Common Community".into();
        j.payload = Payload::default();
    }
    queue_all(&daemon.queue, &all).await?;
    let total = daemon.queue.count(Some(JobState::Pending)).await?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(daemon.delivery.clone().run(cancel.clone()));
    let start = Instant::now();
    let first = poll_delivered(
        &daemon.queue,
        &sim,
        total,
        start,
        Duration::from_secs(seconds),
    )
    .await?;
    let elapsed = start.elapsed().as_secs_f64();
    let delivered = daemon.queue.count(Some(JobState::Delivered)).await?;
    let requests = sim.stats().requests;
    cancel.cancel();
    task.await??;
    let steady = first.map(|(t, r)| (requests - r) as f64 / t.elapsed().as_secs_f64());
    println!(
        "deliver: {total} jobs to the simulator on loopback, 32 workers, rate_per_second = {}",
        if rate == 0 {
            "none".to_string()
        } else {
            rate.to_string()
        }
    );
    println!(
        "  {delivered} delivered in {elapsed:.2} s = {:.0} indicators/s",
        delivered as f64 / elapsed
    );
    if let Some(s) = steady {
        println!("  requests/s after the first second: {s:.1}");
    }
    Ok(())
}

/// Starts a daemon (its queue and `watch.dir` in `root`) that delivers to
/// `sim` as owner `Common Community`, with this `[delivery]` section.
async fn start_daemon(
    sim: &crate::sim::Simulator,
    root: &std::path::Path,
    delivery: &str,
) -> anyhow::Result<crate::app::Daemon> {
    let config = format!(
        "[api]\nbase_url = \"{base}\"\naccess_id = \"{id}\"\nsecret_key = \"{secret}\"\nowner = \"Common Community\"\n\
         [watch]\ndir = \"{root}/incoming\"\n[queue]\npath = \"{root}/queue.db\"\n{delivery}",
        base = sim.base_url(),
        id = crate::sim::DEFAULT_ACCESS_ID,
        secret = crate::sim::DEFAULT_SECRET,
        root = root.display(),
    );
    let path = root.join("c.toml");
    std::fs::write(&path, &config)?;
    let cfg = crate::config::Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::app::Daemon::start(&path, cfg).await
}

/// Queues `jobs` in chunks of 4096.
async fn queue_all(queue: &Queue, jobs: &[NewJob]) -> anyhow::Result<()> {
    for chunk in jobs.chunks(4096) {
        queue
            .commit_chunk(None, chunk, &[], 0, 0, Duration::from_secs(86_400))
            .await?;
    }
    Ok(())
}

/// Polls every 250 ms until `total` jobs are delivered or `limit` has
/// passed since `start`. Returns when the first second was over and the
/// simulator's request count then (`None` when it ended sooner).
async fn poll_delivered(
    queue: &Queue,
    sim: &crate::sim::Simulator,
    total: u64,
    start: Instant,
    limit: Duration,
) -> anyhow::Result<Option<(Instant, u64)>> {
    let mut first = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let requests = sim.stats().requests;
        // Measure the steady state: from the first second on.
        if first.is_none() && start.elapsed() >= Duration::from_secs(1) {
            first = Some((Instant::now(), requests));
        }
        let delivered = queue.count(Some(JobState::Delivered)).await?;
        if delivered >= total || start.elapsed() >= limit {
            return Ok(first);
        }
    }
}

/// `n` hosts with two tags each and a description on every fourth, delivered
/// in `mode` at `rate` requests/s against the simulator with `latency_ms` per
/// request and batch jobs processed at `batch_rate` items/s: the time until
/// every job is delivered, and the requests it took.
async fn deliver_mode(mode: DeliveryMode, n: usize, rate: u32, run: ModeRun) -> anyhow::Result<()> {
    let mut sim_cfg = crate::sim::SimConfig::default();
    sim_cfg.faults.latency_ms = run.latency_ms;
    sim_cfg.faults.batch_items_per_sec = run.batch_rate;
    let sim = crate::sim::Simulator::start_local(sim_cfg).await?;
    let dir = tempfile::tempdir()?;
    let delivery = format!("[delivery]\nrate_per_second = {rate}\nmode = \"{mode}\"\n");
    let daemon = start_daemon(&sim, dir.path(), &delivery).await?;
    queue_all(&daemon.queue, &tagged_hosts(n)).await?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(daemon.delivery.clone().run(cancel.clone()));
    let start = Instant::now();
    let (delivered, dead) = poll_ended(&daemon.queue, n as u64, start).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let stats = sim.stats();
    cancel.cancel();
    task.await??;
    println!(
        "deliver --mode {mode}: {n} hosts (2 tags each, a description on every 4th), \
         rate_per_second = {rate}, simulator latency {} ms, batch processing {} items/s",
        run.latency_ms, run.batch_rate
    );
    println!(
        "  {delivered} delivered, {dead} buried in {elapsed:.1} s; {} requests ({:.2} per indicator)",
        stats.requests,
        stats.requests as f64 / n as f64
    );
    if mode == DeliveryMode::Batch && run.batch_rate > 0 {
        println!(
            "  the simulator's own batch processing time (the physical limit): {:.1} s",
            n as f64 / run.batch_rate as f64
        );
    }
    Ok(())
}

/// `n` host jobs for `Common Community`, two tags each and a description on
/// every fourth.
fn tagged_hosts(n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| {
            let indicator =
                crate::normalize::value(&format!("h{i}.bench.example.com"), None).expect("a host");
            let attributes = if i % 4 == 0 {
                vec![crate::indicator::Attribute {
                    kind: "Description".into(),
                    value: format!("bench host {i}"),
                }]
            } else {
                Vec::new()
            };
            NewJob {
                owner: "Common Community".into(),
                indicator,
                payload: Payload {
                    tags: vec!["bench".into(), format!("group{}", i % 10)],
                    attributes,
                    ..Payload::default()
                },
                line: Some(i as u64 + 1),
            }
        })
        .collect()
}

/// Polls every 250 ms until `n` jobs are delivered or dead, reporting
/// progress on standard error every minute. Returns (delivered, dead).
async fn poll_ended(queue: &Queue, n: u64, start: Instant) -> anyhow::Result<(u64, u64)> {
    let mut last_report = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let delivered = queue.count(Some(JobState::Delivered)).await?;
        let dead = queue.count(Some(JobState::Dead)).await?;
        if delivered + dead >= n {
            return Ok((delivered, dead));
        }
        if last_report.elapsed() >= Duration::from_secs(60) {
            eprintln!(
                "  ... {delivered} delivered after {:.0} s",
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
}
