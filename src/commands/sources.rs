//! `tc-ingest sources`: the pull sources' health, and `sources discover`
//! (a TAXII server's API roots and collections).

use std::path::PathBuf;
use std::time::Duration;

use super::load_config;
use super::queue::{open_existing, source_limits};
use crate::cli::{ConfigArg, SourcesAction};
use crate::config::{SourceConfig, SourceKind};
use crate::exit;
use crate::sources::{Fetcher, discover};
use crate::status::StatusView;

pub(super) async fn run(
    arg: &ConfigArg,
    as_json: bool,
    action: Option<SourcesAction>,
) -> anyhow::Result<u8> {
    if let Some(SourcesAction::Discover {
        url,
        username,
        password_file,
        header_file,
        ca_file,
    }) = action
    {
        return discover_cmd(url, username, password_file, header_file, ca_file).await;
    }
    let cfg = load_config(arg)?;
    let view = match open_existing(&cfg).await {
        Ok(queue) => {
            let v = StatusView::read(&queue).await?;
            queue.close().await;
            v
        }
        // No queue yet: the configured sources, never polled.
        Err(_) => StatusView::of_stats(crate::queue::Stats::default(), ""),
    }
    .with_sources(&source_limits(&cfg));
    if as_json {
        let sources = crate::status::json(&view)["sources"].clone();
        println!("{}", serde_json::to_string_pretty(&sources)?);
    } else {
        print!("{}", crate::status::sources_table(&view));
    }
    Ok(exit::OK)
}

async fn discover_cmd(
    url: String,
    username: Option<String>,
    password_file: Option<PathBuf>,
    header_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let cfg = SourceConfig {
        name: "discover".into(),
        kind: SourceKind::Taxii,
        url: url.clone(),
        collection: None,
        interval: Duration::from_secs(60),
        username,
        password_file,
        header_file,
        client_cert_file: None,
        client_key_file: None,
        ca_file,
        max_bytes: 64 << 20,
        stale_after: Duration::from_secs(180),
        initial_lookback: None,
        page_size: 1,
        read_timeout: Duration::from_secs(30),
        proxy: None,
        preset: None,
    };
    let fetcher = Fetcher::new(&cfg)?;
    let roots = discover(&fetcher, &url)
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e} [{}]", e.class))?;
    let mut failed = false;
    for root in roots {
        println!(
            "API root {}{}",
            root.url,
            root.title.map(|t| format!("  ({t})")).unwrap_or_default()
        );
        match root.collections {
            Ok(cs) if cs.is_empty() => println!("  no collections"),
            Ok(cs) => {
                for c in cs {
                    println!(
                        "  collection {}  {:<40} can_read={} can_write={}",
                        c.id,
                        c.title.unwrap_or_default(),
                        c.can_read,
                        c.can_write
                    );
                }
            }
            Err(e) => {
                failed = true;
                println!("  collections: {e} [{}]", e.class);
            }
        }
    }
    Ok(if failed { exit::PARTIAL } else { exit::OK })
}
