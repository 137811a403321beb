//! `tc-ingest status`: the queue as a table for people, or one stable JSON
//! object for programs (fields documented in the README).

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::queue::{JobState, Stats, now_ms};

const STATES: [JobState; 6] = [
    JobState::Pending,
    JobState::Leased,
    JobState::Batched,
    JobState::Held,
    JobState::Dead,
    JobState::Delivered,
];

fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Whether every owner with waiting work is held.
pub fn all_owners_held(s: &Stats) -> bool {
    let waiting: Vec<&String> = s
        .by_owner
        .iter()
        .filter(|(_, states)| {
            [JobState::Pending, JobState::Leased, JobState::Held]
                .iter()
                .any(|k| states.get(k).copied().unwrap_or(0) > 0)
        })
        .map(|(o, _)| o)
        .collect();
    !waiting.is_empty()
        && waiting
            .iter()
            .all(|o| s.held_owners.iter().any(|h| &&h.owner == o))
}

/// The stable JSON form.
pub fn json(s: &Stats, queue_path: &str) -> Value {
    let daemon = s.heartbeat.as_ref().map(|h| {
        let at = h.get("at").and_then(Value::as_i64).unwrap_or(0);
        json!({
            "pid": h.get("pid"),
            "last_heartbeat": iso(at),
            "seconds_since_heartbeat": ((now_ms() - at).max(0) / 1000),
            "rate_fraction": h.get("rate_fraction"),
            "clock_offset_secs": h.get("clock_offset_secs"),
        })
    });
    json!({
        "queue": queue_path,
        "jobs": STATES.iter().map(|k| (k.to_string(), json!(s.jobs(*k)))).collect::<serde_json::Map<_, _>>(),
        "by_owner": s.by_owner,
        "by_type": s.by_type,
        "dead_by_class": s.dead_by_class,
        "held_owners": s.held_owners.iter().map(|h| json!({"owner": h.owner, "class": h.class, "reason": h.reason, "since": iso(h.held_at)})).collect::<Vec<_>>(),
        "all_owners_held": all_owners_held(s),
        "paused": s.pause.as_ref().map(|p| json!({"class": p.class, "reason": p.reason, "since": iso(p.since)})),
        "oldest_pending_secs": s.oldest_pending_secs,
        "delivered_last_minute": s.delivered_last_minute,
        "delivered_last_hour": s.delivered_last_hour,
        "files": s.files_by_state,
        "rows_rejected": s.rows_rejected,
        "daemon": daemon,
        "modes": s.heartbeat.as_ref().and_then(|h| h.get("modes")),
        "batches": s.batches.iter().map(|b| json!({
            "id": b.id, "tc_batch_id": b.tc_batch_id, "owner": b.owner, "items": b.items,
            "state": b.state, "tc_status": b.tc_status, "age_secs": (now_ms() - b.created_at).max(0) / 1000,
        })).collect::<Vec<_>>(),
    })
}

/// The table for people.
pub fn table(s: &Stats, queue_path: &str) -> String {
    let mut o = String::new();
    overview(&mut o, s, queue_path);
    breakdown(&mut o, s);
    bulk(&mut o, s);
    problems(&mut o, s);
    o
}

/// The delivery mode per owner (as the running daemon last said) and the
/// batch jobs in flight.
fn bulk(o: &mut String, s: &Stats) {
    if let Some(modes) = s
        .heartbeat
        .as_ref()
        .and_then(|h| h.get("modes"))
        .and_then(Value::as_object)
    {
        let list: Vec<String> = modes
            .iter()
            .map(|(owner, mode)| format!("{owner}: {}", mode.as_str().unwrap_or("?")))
            .collect();
        let _ = writeln!(
            o,
            "
delivery mode: {}",
            list.join(", ")
        );
    }
    if s.batches.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "
batch jobs in flight:
  {:<8}{:<10}{:<28}{:>8}  {:<18}{:>8}",
        "id", "tc id", "owner", "items", "state", "age"
    );
    for b in &s.batches {
        let state = match &b.tc_status {
            Some(st) => format!("{:?} ({st})", b.state).to_lowercase(),
            None => format!("{:?}", b.state).to_lowercase(),
        };
        let _ = writeln!(
            o,
            "  {:<8}{:<10}{:<28}{:>8}  {:<18}{:>7}s",
            b.id,
            b.tc_batch_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            b.owner,
            b.items,
            state,
            (now_ms() - b.created_at).max(0) / 1000
        );
    }
}

/// The queue, whether delivery runs, the daemon, the counts by state.
fn overview(o: &mut String, s: &Stats, queue_path: &str) {
    let _ = writeln!(o, "queue: {queue_path}");
    match &s.pause {
        Some(p) => {
            let _ = writeln!(o, "DELIVERY PAUSED: {} (since {})", p.reason, iso(p.since));
        }
        None => {
            let _ = writeln!(o, "delivery: running");
        }
    }
    if let Some(h) = &s.heartbeat {
        let at = h.get("at").and_then(Value::as_i64).unwrap_or(0);
        let _ = writeln!(
            o,
            "daemon: pid {} (last heartbeat {}s ago)",
            h.get("pid").map(Value::to_string).unwrap_or_default(),
            (now_ms() - at).max(0) / 1000
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<12}{:>10}", "state", "jobs");
    for k in STATES {
        let _ = writeln!(o, "{:<12}{:>10}", k.as_str(), s.jobs(k));
    }
    if let Some(age) = s.oldest_pending_secs {
        let _ = writeln!(
            o,
            "oldest pending: {}",
            humantime::format_duration(std::time::Duration::from_secs(age))
        );
    }
    let _ = writeln!(
        o,
        "delivered: {} in the last minute, {} in the last hour",
        s.delivered_last_minute, s.delivered_last_hour
    );
}

/// Jobs by owner and by type.
fn breakdown(o: &mut String, s: &Stats) {
    let header = |o: &mut String, title: &str| {
        let _ = writeln!(
            o,
            "\n{title:<28}{:>10}{:>10}{:>10}{:>10}{:>11}",
            "pending", "leased", "held", "dead", "delivered"
        );
    };
    let row = |o: &mut String, name: &str, m: &std::collections::BTreeMap<JobState, u64>| {
        let g = |k: JobState| m.get(&k).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "{name:<28}{:>10}{:>10}{:>10}{:>10}{:>11}",
            g(JobState::Pending),
            g(JobState::Leased),
            g(JobState::Held),
            g(JobState::Dead),
            g(JobState::Delivered)
        );
    };
    if !s.by_owner.is_empty() {
        header(o, "owner");
        for (owner, m) in &s.by_owner {
            row(o, owner, m);
        }
        header(o, "type");
        for (t, m) in &s.by_type {
            row(o, t, m);
        }
    }
}

/// Held owners, dead jobs by class, files.
fn problems(o: &mut String, s: &Stats) {
    if !s.held_owners.is_empty() {
        let _ = writeln!(o, "\nheld owners:");
        for h in &s.held_owners {
            let _ = writeln!(
                o,
                "  {} ({}: {}) since {}",
                h.owner,
                h.class,
                h.reason,
                iso(h.held_at)
            );
        }
        if all_owners_held(s) {
            let _ = writeln!(
                o,
                "  EVERY OWNER WITH WORK IS HELD: nothing can be delivered until access is restored"
            );
        }
    }
    if !s.dead_by_class.is_empty() {
        let _ = writeln!(
            o,
            "\ndead jobs by class (requeue with `tc-ingest retry --class C`):"
        );
        for (c, k) in &s.dead_by_class {
            let _ = writeln!(o, "  {c:<20}{k:>10}");
        }
    }
    if !s.files_by_state.is_empty() {
        let files: Vec<String> = s
            .files_by_state
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            o,
            "\nfiles: {} ({} rows rejected)",
            files.join(", "),
            s.rows_rejected
        );
    }
}
