//! `bench allowlist`: intake of the same mixed feed with no allowlist and
//! with every MISP warninglist of a checkout loaded (the bound: at
//! most 20% fewer rows/s), alternated so that both see the same machine.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config::AllowlistConfig;
use crate::lifecycle::Allowlist;

/// Where the lists are: `$TC_INGEST_WARNINGLISTS`, else Debian's path.
fn lists_dir() -> PathBuf {
    std::env::var_os("TC_INGEST_WARNINGLISTS").map_or_else(
        || PathBuf::from("/usr/share/misp-warninglists/lists"),
        PathBuf::from,
    )
}

/// # Errors
/// The lists cannot be loaded, or intake fails.
pub async fn bench(n: usize) -> anyhow::Result<()> {
    let dir = lists_dir();
    let cfg = AllowlistConfig {
        builtin: true,
        misp_warninglists: vec![dir.clone()],
        ..AllowlistConfig::default()
    };
    let start = Instant::now();
    let (full, warnings) = Allowlist::build(&cfg)
        .map_err(|e| anyhow::anyhow!("loading {}: {}", dir.display(), e.join("; ")))?;
    let full = Arc::new(full);
    let (entries, lists) = full.size();
    println!(
        "allowlist: {n} mixed rows, no allowlist against builtin + {lists} warninglists \
         ({entries} entries, loaded in {:.2} s, {} warnings) from {}",
        start.elapsed().as_secs_f64(),
        warnings.len(),
        dir.display()
    );
    let corpus = corpus(n);
    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..2 {
        for (i, list) in [Arc::new(Allowlist::empty()), full.clone()]
            .into_iter()
            .enumerate()
        {
            let (rate, filtered) = run(&corpus, list).await?;
            println!(
                "  round {round} {:<9} {rate:>8.0} rows/s, {filtered} filtered",
                ["none", "lists"][i]
            );
            rates[i].push(rate);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (none, with) = (mean(&rates[0]), mean(&rates[1]));
    println!(
        "  mean: none {none:.0} rows/s, lists {with:.0} rows/s: {:.2} of none",
        with / none
    );
    Ok(())
}

/// `n` rows of four types (addresses, hosts, URLs, MD5s) that no list
/// should hold, so that both runs queue the same rows and the difference is
/// the lookups (the count filtered says how well that held).
fn corpus(n: usize) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("45.{}.{}.{}", rng.u8(..), rng.u8(..), rng.u8(1..255)),
            1 => format!("h{i}.c2-{}.bench-intel.net", rng.u32(..)),
            2 => format!("http://d{}.bench-intel.org/p/{i}.php", rng.u32(..)),
            _ => format!("{:032x}", rng.u128(..)),
        })
        .collect()
}

/// One intake of `corpus` as a plain list: rows/s and rows filtered.
async fn run(corpus: &[String], list: Arc<Allowlist>) -> anyhow::Result<(f64, u64)> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    std::fs::create_dir_all(root.join("incoming"))?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(root.join("incoming/mixed.txt"))?);
    for v in corpus {
        writeln!(w, "{v}")?;
    }
    w.flush()?;
    drop(w);
    let (mut intake, q, _cfg) = super::intake_at(root, list).await?;
    let start = Instant::now();
    intake
        .scan(&tokio_util::sync::CancellationToken::new(), false)
        .await?;
    let rate = corpus.len() as f64 / start.elapsed().as_secs_f64();
    let filtered = q
        .file_progress(1)
        .await?
        .first()
        .map_or(0, |f| f.filtered.iter().map(|(_, n)| n).sum());
    q.close().await;
    Ok((rate, filtered))
}
