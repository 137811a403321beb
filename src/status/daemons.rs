//! The daemons on the queue, as `status` lists them: on a shared
//! (PostgreSQL) queue each daemon's host, pid, version, heartbeat and the
//! job leases it holds; `gone` for one silent past `GONE_AFTER`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{StatusView, iso};
use crate::queue::now_ms;

/// The `daemons:` section: shown when several daemons share the queue, or
/// one is gone.
pub(super) fn text(o: &mut String, v: &StatusView) {
    if v.daemons.len() < 2 && v.daemons.iter().all(|d| d.state() != "gone") {
        return;
    }
    let _ = writeln!(o, "daemons:");
    for m in &v.daemons {
        let leases = m.details.get("leases_held").and_then(Value::as_u64);
        let paused = m.details.get("paused").and_then(Value::as_str);
        let _ = writeln!(
            o,
            "  {:<8} {:<24} pid {:<8} {:<8} heartbeat {} ago, {} job leases{}",
            m.state().to_uppercase(),
            m.host,
            m.pid,
            m.version,
            v.since(now_ms() - m.heartbeat_age_ms),
            leases.map_or("?".into(), |l| l.to_string()),
            paused.map_or(String::new(), |r| format!(", PAUSED: {r}")),
        );
    }
}

/// `status --json`'s `daemons`.
pub(super) fn json(v: &StatusView) -> Value {
    v.daemons
        .iter()
        .map(|d| {
            json!({
                "id": d.id, "host": d.host, "pid": d.pid, "version": d.version,
                "state": d.state(), "started": iso(d.started_at),
                "last_heartbeat": iso(d.heartbeat_at),
                "seconds_since_heartbeat": d.heartbeat_age_ms.max(0) / 1000,
                "stopped": d.stopped_at.map(iso),
                "leases_held": d.details.get("leases_held"),
                "rate_share": d.details.get("rate_share"),
                "paused": d.details.get("paused"),
            })
        })
        .collect()
}

/// The queue, whether a daemon runs and delivers.
pub(super) fn overview(o: &mut String, v: &StatusView) {
    let _ = writeln!(o, "queue: {}", v.queue_path);
    let d = &v.daemon;
    if !d.asked {
        if let Some(p) = &v.stats.pause {
            let _ = writeln!(o, "DELIVERY PAUSED: {} (since {})", p.reason, iso(p.since));
        }
        return;
    }
    let pid = d.pid.map(|p| format!("pid {p}")).unwrap_or("pid ?".into());
    match (d.running, d.heartbeat_at) {
        (true, Some(at)) => {
            let _ = writeln!(
                o,
                "daemon: running, {pid} (last heartbeat {} ago)",
                v.since(at)
            );
        }
        (true, None) => {
            let _ = writeln!(o, "daemon: running, {pid} (no heartbeat yet)");
        }
        (false, Some(at)) => {
            let _ = writeln!(
                o,
                "daemon: NOT RUNNING (last seen {} ago, {}, {pid})",
                v.since(at),
                iso(at)
            );
        }
        (false, None) => {
            let _ = writeln!(o, "daemon: NOT RUNNING (no heartbeat recorded)");
        }
    }
    text(o, v);
    match (&v.stats.pause, d.running) {
        (Some(p), true) => {
            let _ = writeln!(o, "DELIVERY PAUSED: {} (since {})", p.reason, iso(p.since));
        }
        (_, false) => {
            let _ = writeln!(
                o,
                "delivery: stopped (start the daemon: systemctl start tc-ingest, or tc-ingest run)"
            );
        }
        (None, true) => {
            let _ = writeln!(o, "delivery: running");
        }
    }
}
