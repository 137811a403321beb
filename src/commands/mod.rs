//! The subcommands: each parses what it needs, calls into the library, and
//! maps the result to an exit code (0 ok, 1 partial, 2 config or input error).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::api::{Client, Clock, Outcome};
use crate::cli::{Cli, Command, ConfigArg, SimArgs};
use crate::config::{self, Config, CredentialKind};
use crate::exit;
use crate::queue::{Queue, RetryFilter};
use crate::sim::{SimConfig, SimOwner, Simulator};

mod feeds;

pub use feeds::parse_kind;
use feeds::{enqueue, normalize_files};

pub fn main(cli: Cli) -> ExitCode {
    // The demo prints its own report: only warnings and errors go beside it.
    let default_filter = if matches!(cli.command, Command::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    crate::logs::init(cli.log_format, default_filter);
    // Commands that only print (and open no sockets) end quietly when their
    // reader goes away (`tc-ingest normalize x | head`), as Unix tools do.
    // Rust ignores SIGPIPE by default, which the network commands need.
    if matches!(
        cli.command,
        Command::Normalize { .. }
            | Command::Status { .. }
            | Command::CheckConfig { .. }
            | Command::Enqueue { .. }
            | Command::Retry { .. }
            | Command::Purge { .. }
            | Command::Why { .. }
    ) {
        // SAFETY: restoring the default disposition of a signal, before any
        // thread is started, has no memory-safety preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = rt.block_on(dispatch(cli.command));
    ExitCode::from(code)
}

async fn dispatch(cmd: Command) -> u8 {
    let result = match cmd {
        Command::CheckConfig { config } => check_config(&config),
        Command::Ping { config } => ping(&config).await,
        Command::Sim(args) => sim(args).await,
        Command::Normalize {
            config,
            kind,
            files,
        } => normalize_files(config.as_deref(), kind.as_deref(), &files),
        Command::Run { config, once } => {
            Ok(crate::app::run(&Config::locate(config.config.as_deref()), once).await)
        }
        Command::Enqueue {
            config,
            owner,
            kind,
            files,
        } => enqueue(&config, owner.as_deref(), kind.as_deref(), &files).await,
        Command::Status {
            config,
            json,
            watch,
            interval,
            count,
        } => {
            if watch {
                status_watch(&config, interval, count).await
            } else {
                status(&config, json).await
            }
        }
        Command::Why { config, what } => why(&config, &what).await,
        Command::Retry {
            config,
            class,
            owner,
            file,
            dry_run,
        } => retry(&config, RetryFilter { class, owner, file }, dry_run).await,
        Command::Purge {
            config,
            delivered_before,
            dry_run,
        } => purge(&config, delivered_before, dry_run).await,
        Command::Demo { keep } => crate::demo::run(keep).await,
        Command::Generate { out } => generate(&out),
        Command::Bench {
            which,
            n,
            rate,
            seconds,
            mode,
            latency_ms,
            batch_rate,
        } => {
            let modes = crate::bench::ModeRun {
                mode,
                latency_ms,
                batch_rate,
            };
            crate::bench::run(which, n, rate, seconds, modes).await
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        exit::ERROR
    })
}

/// Loads the config or prints every error.
pub fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    let path = Config::locate(arg.config.as_deref());
    Config::load(&path)
        .map_err(|e| anyhow::anyhow!("invalid configuration {}:\n{e}", path.display()))
}

fn check_config(arg: &ConfigArg) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    print!("{}", config::render(&cfg));
    Ok(exit::OK)
}

async fn ping(arg: &ConfigArg) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let client = Client::new(&cfg.api, Arc::new(Clock::default()))?;
    // Every owner the config writes to: api.owner, then each feed rule's.
    let mut wanted: Vec<(String, String)> = vec![("api.owner".into(), cfg.api.owner.clone())];
    for (i, rule) in cfg.feeds.iter().enumerate() {
        if let Some(o) = &rule.owner {
            wanted.push((format!("feeds[{i}].owner"), o.clone()));
        }
    }
    match client.owners().await {
        Ok(owners) => {
            let who = match &cfg.api.credentials {
                Some(c) if c.kind == CredentialKind::Token => {
                    format!("the API token from {}", c.source)
                }
                _ => format!("access id {}", cfg.api.access_id),
            };
            let via = cfg
                .api
                .proxy
                .as_ref()
                .map(|p| format!(" through the {p}"))
                .unwrap_or_default();
            println!("connected to {}{via} with {who}", cfg.api.base_url);
            println!("owners visible to this API user:");
            for o in &owners {
                let keys: Vec<&str> = wanted
                    .iter()
                    .filter(|(_, name)| *name == o.name)
                    .map(|(k, _)| k.as_str())
                    .collect();
                let mark = if keys.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", keys.join(", "))
                };
                println!("  {:>6}  {:<14} {}{mark}", o.id, o.kind, o.name);
            }
            let mut code = exit::OK;
            for (key, name) in &wanted {
                if !owners.iter().any(|o| &o.name == name) {
                    println!(
                        "warning: {key} {name:?} is not among them: its indicators would be held \
                         (grant the API user access to it, or fix the name)"
                    );
                    code = exit::PARTIAL;
                }
            }
            Ok(code)
        }
        Err(outcome) => {
            eprintln!("ping failed: {} ({})", outcome.class(), outcome.message());
            if let Some(advice) = outcome.advice() {
                eprintln!("what to check: {advice}");
            }
            if let (Outcome::Transport { .. }, Some(proxy)) = (&outcome, &cfg.api.proxy) {
                eprintln!(
                    "the request went through the {proxy}: check that it runs, accepts us, and \
                     allows CONNECT to {}; or change {} (NO_PROXY={} reaches it directly)",
                    host_port(&cfg.api.base_url),
                    proxy.source.name(),
                    url::Url::parse(&cfg.api.base_url)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string))
                        .unwrap_or_default(),
                );
            }
            if outcome.class() == crate::names::ErrorClass::NotFound {
                let base = cfg.api.base_url.trim_end_matches('/');
                if base.ends_with("/api") {
                    eprintln!(
                        "hint: {base}/v2/owners was not found: public cloud (api.threatconnect.com) \
                         takes api.base_url without /api"
                    );
                } else {
                    eprintln!(
                        "hint: {base}/v2/owners was not found: sandbox, dedicated and on-premise \
                         instances need /api at the end of api.base_url (\"{base}/api\")"
                    );
                }
            }
            if let Outcome::TimestampOutOfRange {
                server_date: Some(t),
            } = &outcome
            {
                let skew = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
                    - crate::api::sign::unix_now();
                eprintln!("the server's clock is {skew:+} s from ours");
            }
            Ok(exit::ERROR)
        }
    }
}

/// `host:port` of a URL (the port defaulted by its scheme).
fn host_port(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| url.to_string())
}

/// `generate --out DIR`: shell completions under `DIR/completions`
/// (`tc-ingest.bash`, `_tc-ingest`, `tc-ingest.fish`) and man pages under
/// `DIR/man` (`tc-ingest.1`, one `tc-ingest-<command>.1` per subcommand).
fn generate(out: &std::path::Path) -> anyhow::Result<u8> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let completions = out.join("completions");
    let man = out.join("man");
    for dir in [&completions, &man] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut cmd = Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, "tc-ingest", &completions)
            .with_context(|| format!("writing {shell} completions"))?;
        println!("{}", path.display());
    }
    clap_mangen::generate_to(Cli::command(), &man).context("writing man pages")?;
    println!("{}/*.1", man.display());
    Ok(exit::OK)
}

async fn sim(a: SimArgs) -> anyhow::Result<u8> {
    let mut cfg = SimConfig {
        access_id: a.access_id,
        secret: a.secret,
        token: Some(a.token),
        base_path: a.base_path,
        ..SimConfig::default()
    };
    if !a.owners.is_empty() {
        cfg.owners = a
            .owners
            .iter()
            .enumerate()
            .map(|(i, name)| SimOwner {
                id: i as i64,
                name: name.clone(),
                kind: "Organization".into(),
            })
            .collect();
    }
    cfg.faults.error_rate = a.error_rate;
    cfg.faults.error_status = a.error_status;
    cfg.faults.latency_ms = a.latency_ms;
    cfg.faults.drop_rate = a.drop_rate;
    cfg.faults.lost_response_rate = a.lost_response_rate;
    cfg.faults.clock_skew_secs = a.clock_skew_secs;
    cfg.faults.denied_owners = a.denied_owners;
    cfg.faults.token_expired = a.token_expired;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    let owners: Vec<String> = cfg.owners.iter().map(|o| o.name.clone()).collect();
    let access_id = cfg.access_id.clone();
    let cfg_token = cfg.token.clone();
    let sim = Simulator::start(cfg, listener)?;
    println!("ThreatConnect simulator listening on {}", sim.base_url());
    println!("  access id: {access_id}   owners: {}", owners.join(", "));
    if let Some(token) = &cfg_token {
        println!("  API token: {token}");
    }
    println!("  inspect: GET /_sim/indicators, GET /_sim/stats; faults: POST /_sim/faults");
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(exit::OK)
}

/// `name n, name n` (or `none`), for the counts line.
fn counts<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens an existing queue (commands that only read or repair it).
async fn open_existing(cfg: &Config) -> anyhow::Result<Queue> {
    if !cfg.queue.path.exists() {
        anyhow::bail!(
            "no queue at {} (queue.path): the daemon has not run yet",
            cfg.queue.path.display()
        );
    }
    Queue::open(&cfg.queue.path).await
}

async fn status(arg: &ConfigArg, as_json: bool) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    let view = crate::status::StatusView::read(&queue).await?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::status::json(&view))?
        );
    } else {
        print!("{}", crate::status::table(&view));
    }
    queue.close().await;
    Ok(exit::OK)
}

/// `status --watch`: a frame every `interval` (the screen cleared first on
/// a terminal), `count` frames or until Ctrl-C.
async fn status_watch(
    arg: &ConfigArg,
    interval: std::time::Duration,
    count: Option<u64>,
) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    let clear = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut prev: Option<crate::status::StatusView> = None;
    let mut frames = 0u64;
    loop {
        let view = crate::status::StatusView::read(&queue).await?;
        let frame = crate::status::watch_frame(&view, prev.as_ref());
        {
            let mut out = std::io::stdout().lock();
            if clear {
                write!(out, "\x1b[H\x1b[2J")?;
            } else if frames > 0 {
                writeln!(out)?;
            }
            write!(out, "{frame}")?;
            out.flush()?;
        }
        prev = Some(view);
        frames += 1;
        if count.is_some_and(|c| frames >= c) {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    queue.close().await;
    Ok(exit::OK)
}

async fn why(arg: &ConfigArg, what: &str) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    let (text, found) = crate::why::explain(&queue, &cfg, what).await?;
    print!("{text}");
    queue.close().await;
    Ok(if found { exit::OK } else { exit::PARTIAL })
}

async fn retry(arg: &ConfigArg, filter: RetryFilter, dry_run: bool) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    if let Some(f) = &filter.file
        && queue.files_named(f).await?.is_empty()
    {
        queue.close().await;
        anyhow::bail!(
            "--file {f:?}: no feed file recorded with that path or name \
             (the recorded paths: SELECT path FROM feed_files)"
        );
    }
    if let Some(name) = &filter.file {
        put_back_given_up(&queue, name, dry_run).await?;
    }
    let by_class = queue.dead_matching(&filter).await?;
    let total: u64 = by_class.values().sum();
    if dry_run {
        println!(
            "would requeue {total} buried job(s){}{}",
            if total > 0 { ": " } else { "" },
            counts(&by_class).replace("none", "")
        );
    } else {
        let n = queue.requeue_dead(&filter).await?;
        println!(
            "requeued {n} buried job(s){}{}",
            if n > 0 { ": " } else { "" },
            counts(&by_class).replace("none", "")
        );
    }
    queue.close().await;
    Ok(exit::OK)
}

/// `retry --file` of a file given up after stalled reads: the daemon is
/// asked to put it back into `processing/` and read it on from its
/// committed position (only the daemon moves files into `processing/`).
async fn put_back_given_up(queue: &Queue, name: &str, dry_run: bool) -> anyhow::Result<()> {
    let Some(f) = queue.file_given_up(name).await? else {
        return Ok(());
    };
    if dry_run {
        println!(
            "would ask the daemon to put {} back, to be read on after position {}",
            f.path, f.last_position
        );
        return Ok(());
    }
    queue.file_ask_put_back(f.id, true).await?;
    println!(
        "asked the daemon to put {} back and read it on after position {}: a running daemon \
         does at its next scan (within watch.rescan_secs), a stopped one at its start",
        f.path, f.last_position
    );
    Ok(())
}

async fn purge(arg: &ConfigArg, before: std::time::Duration, dry_run: bool) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    let age = humantime::format_duration(before);
    if dry_run {
        let n = queue.delivered_before(before).await?;
        println!("would delete {n} delivered job(s) older than {age}");
    } else {
        let n = queue.prune_delivered(before).await?;
        println!("deleted {n} delivered job(s) older than {age}");
    }
    queue.close().await;
    Ok(exit::OK)
}
