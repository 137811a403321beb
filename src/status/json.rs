//! `status --json`: the stable JSON form (fields documented in the README).

use serde_json::{Value, json};

use super::{STATES, StatusView, all_owners_held, daemons, delivery_word, feeds, iso, sources};
use crate::queue::now_ms;

/// The stable JSON form.
pub fn json(v: &StatusView) -> Value {
    let s = &v.stats;
    let d = &v.daemon;
    let daemon = (d.running || d.heartbeat_at.is_some()).then(|| {
        let at = d.heartbeat_at.unwrap_or(0);
        json!({
            "running": d.running,
            "pid": d.pid,
            "last_heartbeat": d.heartbeat_at.map(iso),
            "seconds_since_heartbeat": d.heartbeat_at.map(|_| (v.at - at).max(0) / 1000),
            "rate_fraction": d.rate_fraction,
            "clock_offset_secs": d.clock_offset_secs,
        })
    });
    let files: Vec<Value> = v
        .files
        .iter()
        .map(|f| {
            json!({
                "id": f.id, "path": f.path, "state": f.state,
                "rows_read": f.rows_read, "rows_queued": f.rows_queued,
                "rows_rejected": f.rows_rejected, "rows_duplicate": f.rows_duplicate,
                "skipped": f.skipped.iter().map(|(what, n)| (what.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
                "filtered": f.filtered.iter().map(|(what, n)| (what.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
                "waiting": f.waiting, "delivered": f.delivered, "dead": f.dead,
                "error": f.error, "started": iso(f.started_at), "finished": f.finished_at.map(iso),
            })
        })
        .collect();
    json!({
        "queue": v.queue_path,
        "daemon_running": d.running,
        "delivery": delivery_word(v),
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
        "recent_files": files,
        "rows_rejected": s.rows_rejected,
        "daemon": daemon,
        "daemons": daemons::json(v),
        "modes": s.heartbeat.as_ref().and_then(|h| h.get("modes")),
        "labels_missing": s.heartbeat.as_ref().and_then(|h| h.get("labels_missing")),
        "sources": sources::json(v),
        "feeds": feeds::json(v),
        "batches": s.batches.iter().map(|b| json!({
            "id": b.id, "tc_batch_id": b.tc_batch_id, "owner": b.owner, "items": b.items,
            "state": b.state, "tc_status": b.tc_status, "age_secs": (now_ms() - b.created_at).max(0) / 1000,
        })).collect::<Vec<_>>(),
    })
}
