//! `tc-ingest why <value | job id | file:line>`: everything the queue knows
//! about one indicator: where it came from (file, line, feed rule), its
//! normalized form, its job's state and attempts, the error recorded, and
//! what to do next. The SQL is in `queue::inspect`; this module decides
//! what the question means and says the answer.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::lifecycle::Allowlist;
use crate::names::ErrorClass;
use crate::queue::{JobDetail, JobState, Queue, RejectDetail, now_ms};
use crate::status::iso;

/// What was asked about.
#[derive(Debug, Clone, PartialEq)]
enum Question {
    Job(i64),
    Line {
        file_id: i64,
        path: String,
        line: u64,
    },
    Value(String),
}

/// What a value normalizes to, and whether the allowlist filters it.
fn describe_value(
    o: &mut String,
    what: &str,
    n: &Result<crate::indicator::Indicator, crate::normalize::Reject>,
    allowlist: &Allowlist,
) -> bool {
    match n {
        Ok(i) => {
            let _ = writeln!(
                o,
                "{what:?} normalizes to {} {:?}",
                i.kind().tc_name(),
                i.summary()
            );
            let by = allowlist.check(i);
            if let Some(by) = by {
                let _ = writeln!(
                    o,
                    "filtered by the allowlist ({:?}): rows with it are counted as filtered, \
                     never queued; `tc-ingest purge --allowlisted` removes jobs queued before",
                    &*by.0
                );
            }
            by.is_some()
        }
        Err(r) => {
            let _ = writeln!(
                o,
                "{what:?} does not normalize without a type: {} ({})",
                r.message, r.rule
            );
            false
        }
    }
}

/// The answer as text, and whether anything was found.
///
/// # Errors
/// Database errors.
pub async fn explain(
    queue: &Queue,
    cfg: &Config,
    allowlist: &Allowlist,
    what: &str,
) -> anyhow::Result<(String, bool)> {
    let what = what.trim();
    let question = understand(queue, what).await?;
    let mut o = String::new();
    let mut retired = false;
    let (jobs, rejects, normalized) = match &question {
        Question::Job(id) => (
            queue.job_detail(*id).await?.into_iter().collect(),
            Vec::new(),
            None,
        ),
        Question::Line {
            file_id,
            path,
            line,
        } => {
            let _ = writeln!(o, "{path} line {line} (file #{file_id}):");
            (
                queue.jobs_at_line(*file_id, *line).await?,
                queue.reject_details(Some((*file_id, *line)), &[]).await?,
                None,
            )
        }
        Question::Value(v) => {
            let normalized = crate::normalize::value(v, None);
            let mut values = vec![v.as_str()];
            if let Ok(i) = &normalized
                && i.summary() != v
            {
                values.push(i.summary());
            }
            for r in queue.retirements(&values).await? {
                retired = true;
                let _ = writeln!(
                    o,
                    "{} {:?} of owner {:?}: retired ({}) {} by {}, {}; a feed listing it again brings it back active",
                    r.kind,
                    r.value,
                    r.owner,
                    r.action,
                    iso(r.at),
                    r.feed
                        .map_or_else(|| "its source".to_string(), |f| format!("feed {f}")),
                    retire_reason(&r.reason)
                );
            }
            (
                queue.jobs_with_value(&values).await?,
                queue.reject_details(None, &[v.as_str()]).await?,
                Some(normalized),
            )
        }
    };
    let filtered = normalized
        .as_ref()
        .is_some_and(|n| describe_value(&mut o, what, n, allowlist));
    for j in &jobs {
        let _ = writeln!(o);
        job(&mut o, j, cfg);
    }
    for r in &rejects {
        let _ = writeln!(o);
        reject(&mut o, r, cfg);
    }
    let found = filtered || retired || !jobs.is_empty() || !rejects.is_empty();
    if !found {
        let _ = writeln!(
            o,
            "nothing in the queue matches {what:?}: not queued (or its job was pruned after \
             queue.delivered_retention, its reject after watch.done_retention)"
        );
    }
    Ok((o, found))
}

/// A job id (digits), `file:line` (when a recorded file has that name),
/// or a value.
async fn understand(queue: &Queue, what: &str) -> anyhow::Result<Question> {
    if let Ok(id) = what.parse::<i64>() {
        return Ok(Question::Job(id));
    }
    if let Some((file, line)) = what.rsplit_once(':')
        && let Ok(line) = line.parse::<u64>()
        && let Some((file_id, path)) = queue.files_named(file).await?.into_iter().next()
    {
        return Ok(Question::Line {
            file_id,
            path,
            line,
        });
    }
    Ok(Question::Value(what.to_string()))
}

/// The first feed rule that applies to a recorded path, as `feeds[i] (match "...")`.
fn rule_for(cfg: &Config, path: &str) -> String {
    let rel = Path::new(path);
    let name = rel.file_name().map(Path::new).unwrap_or(rel);
    cfg.feeds
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches(rel) || r.matches(name))
        .map(|(i, r)| {
            let how = match (&r.pattern, &r.dir) {
                (Some(g), _) => format!("match {:?}", g.glob().glob()),
                (None, Some(d)) => format!("dir {:?}", d.display().to_string()),
                (None, None) => "every file".into(),
            };
            format!("feeds[{i}] ({how})")
        })
        .unwrap_or_else(|| "none (api.owner, types detected)".into())
}

/// What a `retired.reason` means.
fn retire_reason(reason: &str) -> &str {
    match reason {
        "dropped" => "its snapshot no longer listed it",
        "confirmed" => "a held snapshot released with `retire --confirm` no longer listed it",
        "max_age" => "no file listed it within the feed's max_age",
        "expired" => "the end of validity its source gave came",
        "withdrawn" => "its source revoked or deleted the object it came from",
        other => other,
    }
}

fn job(o: &mut String, j: &JobDetail, cfg: &Config) {
    let action = if j.action.retires() {
        format!("retire ({}) ", j.action)
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "job {}: {action}{} {:?}, owner {:?}",
        j.id, j.kind, j.value, j.owner
    );
    match (&j.file_path, j.source_line) {
        (Some(path), line) => {
            let _ = writeln!(
                o,
                "  from:      {path}{} (file #{}), feed rule {}",
                line.map(|l| format!(" line {l}")).unwrap_or_default(),
                j.file_id.unwrap_or(0),
                rule_for(cfg, path)
            );
        }
        (None, _) => {
            let _ = writeln!(
                o,
                "  from:      no file (inserted by hand or with SQL, or its file record was deleted)"
            );
        }
    }
    if j.payload != "{}" {
        let _ = writeln!(o, "  payload:   {}", j.payload);
    }
    let _ = writeln!(o, "  queued:    {}", iso(j.created_at));
    if j.state == JobState::Delivered {
        let _ = writeln!(o, "  state:     delivered");
    } else {
        let _ = writeln!(
            o,
            "  state:     {} (since {}), {} call(s) done, {} failed attempt(s) of the current call",
            j.state,
            iso(j.updated_at),
            j.steps_done,
            j.attempts
        );
    }
    if j.last_error_class.is_some() || j.last_error.is_some() {
        let class = j
            .last_error_class
            .map_or("unknown class", ErrorClass::as_str);
        let _ = writeln!(
            o,
            "  error:     {class}{}: {}",
            j.last_http_status
                .map(|s| format!(" (HTTP {s})"))
                .unwrap_or_default(),
            j.last_error.as_deref().unwrap_or("")
        );
        let _ = writeln!(
            o,
            "             (the last error recorded; earlier attempts' errors are not kept)"
        );
    }
    let _ = writeln!(o, "  next:      {}", next_step(j));
}

fn next_step(j: &JobDetail) -> String {
    let file = j
        .file_path
        .as_deref()
        .and_then(|p| Path::new(p).file_name())
        .map(|n| format!(" --file {}", n.to_string_lossy()))
        .unwrap_or_default();
    match j.state {
        JobState::Delivered => format!(
            "nothing: delivered {}",
            j.delivered_at.map(iso).unwrap_or_default()
        ),
        JobState::Leased => "nothing: a worker is delivering it now".into(),
        JobState::Batched => "nothing: it is in a ThreatConnect batch job the daemon polls (`tc-ingest status` lists them)".into(),
        JobState::Pending => {
            let wait = (j.next_attempt_at - now_ms()) / 1000;
            if wait > 0 {
                format!(
                    "nothing: the daemon tries again at {} (in {wait}s); is it running? `tc-ingest status`",
                    iso(j.next_attempt_at)
                )
            } else {
                "nothing: it is due now; a running daemon takes it (`tc-ingest status` says whether one runs)"
                    .into()
            }
        }
        JobState::Held => format!(
            "grant the API user access to owner {:?} (or fix the owner's name); the daemon probes the owner and releases its jobs by itself",
            j.owner
        ),
        JobState::Dead => {
            let class = j.last_error_class;
            let retry = |c: &str| format!("tc-ingest retry --class {c}{file}");
            match class {
                Some(ErrorClass::Validation) => format!(
                    "ThreatConnect refused the value: fix the data (or the feed rule's type), then `{}`",
                    retry("validation")
                ),
                Some(c @ (ErrorClass::ServerError | ErrorClass::Transport | ErrorClass::RateLimited)) => {
                    format!(
                        "out of attempts on a transient error: once ThreatConnect answers again, `{}`",
                        retry(c.as_str())
                    )
                }
                Some(ErrorClass::InvalidJob) => {
                    "the row does not parse (type or payload): fix it with SQL, or delete it and queue it again".into()
                }
                Some(c) => format!(
                    "read the error above; when its cause is fixed, `{}`",
                    retry(c.as_str())
                ),
                None => format!("`{}`", retry("unknown").replace(" --class unknown", "")),
            }
        }
    }
}

fn reject(o: &mut String, r: &RejectDetail, cfg: &Config) {
    let _ = writeln!(
        o,
        "rejected row: {} line {} (file #{}), feed rule {}",
        r.file_path,
        r.line,
        r.file_id,
        rule_for(cfg, &r.file_path)
    );
    let _ = writeln!(o, "  input:     {:?}", r.input);
    let _ = writeln!(o, "  rule:      {}", r.rule);
    let _ = writeln!(o, "  reason:    {}", r.reason);
    let _ = writeln!(
        o,
        "  next:      it was never queued: fix the row and drop the file again, or set the \
         type or columns in a feed rule (try it with `tc-ingest normalize --config`)"
    );
}
