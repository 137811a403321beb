//! The subcommands: each parses what it needs, calls into the library, and
//! maps the result to an exit code (0 ok, 1 partial, 2 config or input error).

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, ConfigArg, QueueAction, SimArgs};
use crate::config::{self, Config};
use crate::exit;
use crate::queue::RetryFilter;
use crate::sim::{SimConfig, SimOwner, Simulator};

mod feeds;
mod migrate;
mod ping;
mod queue;
mod retire;
mod sources;

use feeds::{enqueue, normalize_files};
use ping::ping;
use queue::{counts, retry, status, status_watch, why};

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
            | Command::Retire { .. }
            | Command::Why { .. }
            | Command::Presets
            | Command::Sources { .. }
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
        Command::Presets => {
            print!("{}", presets());
            Ok(exit::OK)
        }
        Command::Sources {
            config,
            json,
            action,
        } => sources::run(&config, json, action).await,
        Command::Ping { config } => ping(&config).await,
        Command::Sim(args) => sim(args).await,
        Command::Normalize {
            config,
            kind,
            files,
        } => normalize_files(config.as_deref(), kind, &files),
        Command::Run { config, once } => {
            Ok(crate::app::run(&Config::locate(config.config.as_deref()), once).await)
        }
        Command::Enqueue {
            config,
            owner,
            kind,
            files,
        } => enqueue(&config, owner.as_deref(), kind, &files).await,
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
        cmd @ Command::Purge { .. } => queue::purge_cmd(cmd).await,
        cmd @ Command::Retire { .. } => retire::retire_cmd(cmd).await,
        Command::Queue {
            action: QueueAction::Migrate { config, from },
        } => migrate::migrate(&config, &from).await,
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
    // The allowlist's lists are loaded too: one that fails is named.
    let allowlist = allowlist(&cfg)?;
    print!("{}", config::render(&cfg));
    if !allowlist.is_empty() {
        let (entries, lists) = allowlist.size();
        println!("# allowlist: {entries} entries in {lists} lists loaded");
    }
    for note in cfg.notes() {
        println!("# note: {note}");
    }
    Ok(exit::OK)
}

/// The config's allowlist, its lists loaded as the daemon loads them.
///
/// # Errors
/// Every entry or list that fails, by key.
pub fn allowlist(cfg: &Config) -> anyhow::Result<std::sync::Arc<crate::lifecycle::Allowlist>> {
    crate::app::load_allowlist(cfg)
        .map(std::sync::Arc::new)
        .map_err(anyhow::Error::msg)
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

/// What `tc-ingest presets` prints: each known feed, where it is published,
/// its terms, what to know, and the keys the preset sets.
fn presets() -> String {
    use std::fmt::Write;
    let mut o = String::from(
        "Known public feeds: name one in a feed rule (preset = \"NAME\"); a key given beside it wins.\n\
         Check each feed's terms before use.\n",
    );
    for p in crate::config::presets::PRESETS {
        let keys: Vec<&str> = p.keys.lines().collect();
        let _ = write!(
            o,
            "\n{}\n  published at: {}\n  terms:        {}\n  note:         {}\n  sets:         {}\n",
            p.name,
            p.url,
            p.terms,
            p.note,
            keys.join("; ")
        );
    }
    o
}
