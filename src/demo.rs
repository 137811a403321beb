//! `tc-ingest demo`: the built-in simulator, a temporary config, the sample
//! feeds of `examples/feeds/`, the daemon until the queue drains, then a
//! report of what ThreatConnect (the simulator) received, what was rejected
//! and why, and the `status` table. Needs nothing but the binary.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::{Daemon, OnceReport, drive_once};
use crate::config::Config;
use crate::sim::{Faults, SimConfig, Simulator};

/// The sample feeds, built in so the demo runs from anywhere.
const FEEDS: [(&str, &[u8]); 5] = [
    (
        "phishing.csv",
        include_bytes!("../examples/feeds/phishing.csv"),
    ),
    ("c2.json", include_bytes!("../examples/feeds/c2.json")),
    (
        "sightings.ndjson",
        include_bytes!("../examples/feeds/sightings.ndjson"),
    ),
    (
        "blocklist.txt",
        include_bytes!("../examples/feeds/blocklist.txt"),
    ),
    (
        "extra.txt.gz",
        include_bytes!("../examples/feeds/extra.txt.gz"),
    ),
];

/// # Errors
/// When the simulator or the daemon cannot start.
pub async fn run(keep: bool) -> anyhow::Result<u8> {
    let dir = tempfile::Builder::new()
        .prefix("tc-ingest-demo-")
        .tempdir()?;
    let root = dir.path().to_path_buf();
    // A little realism: 5% of requests fail with 503 and are retried.
    let sim = Simulator::start_local(SimConfig {
        faults: Faults {
            error_rate: 0.05,
            error_status: 503,
            ..SimConfig::default().faults
        },
        ..SimConfig::default()
    })
    .await
    .context("starting the simulator")?;
    println!("ThreatConnect simulator on {}", sim.base_url());
    let config_path = write_setup(&root, &sim.base_url())?;
    let cfg = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut daemon = Daemon::start(&config_path, cfg).await?;
    let report = deliver_with_progress(&mut daemon).await?;

    print_report(&sim, &report, daemon.queue.location());
    let code = report.exit_code();
    daemon.queue.close().await;
    sim.stop().await;
    if keep {
        let kept = dir.keep();
        println!(
            "kept {} (config, queue.db, done/ with errors reports)",
            kept.display()
        );
        println!(
            "try: sqlite3 {}/queue.db 'SELECT * FROM queue_summary'",
            kept.display()
        );
    }
    Ok(code)
}

/// Writes the demo's config, secret file and sample feeds under `root`;
/// returns the config's path.
fn write_setup(root: &std::path::Path, base_url: &str) -> anyhow::Result<std::path::PathBuf> {
    let config_text = format!(
        r#"# Written by `tc-ingest demo`. The secret file holds the simulator's test key.
[api]
base_url = "{base}"
access_id = "{id}"
secret_key_file = "{root}/secret"
owner = "Exemplary Organization"

[watch]
dir = "{root}/incoming"

[queue]
path = "{root}/queue.db"

[delivery]
workers = 8
rate_per_second = 200
burst = 20
backoff_base_ms = 200
backoff_max_secs = 5

[[feeds]]
match = "phishing.csv"
owner = "Common Community"
tags = ["demo", "phishing-feed"]
confidence = 50
"#,
        base = base_url,
        id = crate::sim::DEFAULT_ACCESS_ID,
        root = root.display(),
    );
    std::fs::write(root.join("secret"), crate::sim::DEFAULT_SECRET)?;
    let config_path = root.join("tc-ingest.toml");
    std::fs::write(&config_path, &config_text)?;
    let incoming = root.join("incoming");
    std::fs::create_dir_all(&incoming)?;
    for (name, bytes) in FEEDS {
        std::fs::write(incoming.join(name), bytes)?;
    }
    println!(
        "dropped {} sample feeds into {}\n",
        FEEDS.len(),
        incoming.display()
    );

    Ok(config_path)
}

/// `run --once`, with a progress bar on a terminal (a line a second otherwise).
async fn deliver_with_progress(daemon: &mut Daemon) -> anyhow::Result<OnceReport> {
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{spinner} delivering [{bar:40}] {pos}/{len} jobs {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut last_print = std::time::Instant::now();
    let mut draw = |s: &crate::queue::StateCounts| {
        let finished = s.delivered_since + s.dead;
        let total = finished + s.pending + s.leased + s.held;
        bar.set_length(total);
        bar.set_position(finished);
        bar.set_message(format!(
            "(pending {}, dead {})",
            s.pending + s.leased,
            s.dead
        ));
        if bar.is_hidden() && last_print.elapsed() >= Duration::from_secs(1) {
            last_print = std::time::Instant::now();
            eprintln!("delivered {finished}/{total} jobs");
        }
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let report = drive_once(daemon, &cancel, Some(&mut draw)).await?;
    bar.finish_and_clear();
    Ok(report)
}

/// What the simulator holds, what was rejected, and the queue's status.
fn print_report(sim: &Simulator, report: &OnceReport, queue_path: &str) {
    // What the simulator received, per type.
    let held = sim.indicators();
    let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in &held {
        by_type
            .entry(i.kind.as_str())
            .or_default()
            .push(i.value.as_str());
    }
    println!(
        "ThreatConnect (the simulator) now holds {} indicators:",
        held.len()
    );
    for (t, values) in &by_type {
        println!("  {t:<13} {:>3}   e.g. {}", values.len(), values[0]);
    }
    let stats = sim.stats();
    let retried = stats.by_class.get("injected_error").copied().unwrap_or(0);
    println!(
        "\n{} API requests ({} creates, tags and attributes succeeded; {} answered 503 and were retried)",
        stats.requests,
        stats.by_class.get("success").copied().unwrap_or(0),
        retried
    );

    println!("\nRejected before sending (file, line, reason):");
    for f in &report.files {
        let Some(moved) = &f.moved_to else { continue };
        let mut errors = moved.as_os_str().to_owned();
        errors.push(".errors.ndjson");
        if let Ok(text) = std::fs::read_to_string(&errors) {
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                println!(
                    "  {}:{}  {}",
                    f.rel.display(),
                    v["line"],
                    v["reason"].as_str().or(v["error"].as_str()).unwrap_or("")
                );
            }
        }
    }
    println!(
        "\n{}",
        crate::status::table(&crate::status::StatusView::of_stats(
            report.stats.clone(),
            queue_path
        ))
    );
}
