//! The status page: one server-rendered HTML document with an inline SVG
//! chart, no script and nothing fetched from elsewhere (a strict
//! Content-Security-Policy allows only its own style block), refreshing
//! itself. What is wrong is in red (class `bad`), so that a glance finds it.

use std::fmt::Write as _;
use std::sync::LazyLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::queue::{DeadLetter, FeedHealth, JobState, RecentReject, SourceHealth};
use crate::status::{StatusView, ago, delivery_word, iso};

/// Seconds between the page's own refreshes.
pub const REFRESH_SECS: u32 = 10;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#f7f8fa}\
h1{margin:0 0 .2em}h2{font-size:1.05em;margin:1.4em 0 .4em;border-bottom:1px solid #d5d9e0}\
table{border-collapse:collapse;background:#fff}td,th{padding:.25em .7em;border:1px solid #e1e4ea;text-align:left;vertical-align:top}\
th{background:#eef0f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.bad{color:#b00020;font-weight:600}tr.bad td{background:#fde8eb}.ok{color:#1b7f3b;font-weight:600}\
.muted{color:#69707d}svg{background:#fff;border:1px solid #e1e4ea}rect.bar{fill:#3b6fd4}\
footer{margin-top:2em;color:#69707d;font-size:.9em}";

/// The Content-Security-Policy of the page: nothing but its style block.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
});

/// Everything the page shows.
pub struct Page<'a> {
    pub view: &'a StatusView,
    /// Deliveries per hour, oldest first, the current hour last.
    pub deliveries: &'a [u64],
    pub dead: &'a [DeadLetter],
    pub rejects: &'a [RecentReject],
    /// The daemon's version and how long it has run, in seconds.
    pub version: &'a str,
    pub uptime_secs: u64,
}

/// Text made safe for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A table row of cells already escaped, with `class` on the row.
fn row(o: &mut String, class: &str, cells: &[String]) {
    let _ = write!(o, "<tr class=\"{class}\">");
    for c in cells {
        let numeric = !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
        let _ = write!(
            o,
            "<td{}>{c}</td>",
            if numeric { " class=\"n\"" } else { "" }
        );
    }
    o.push_str("</tr>");
}

fn head(o: &mut String, id: &str, title: &str, columns: &[&str]) {
    let _ = write!(o, "<section id=\"{id}\"><h2>{title}</h2><table><tr>");
    for c in columns {
        let _ = write!(o, "<th>{c}</th>");
    }
    o.push_str("</tr>");
}

/// The page.
pub fn render(p: &Page<'_>) -> String {
    let v = p.view;
    let mut o = String::with_capacity(16 * 1024);
    let word = delivery_word(v);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>tc-ingest: {word}</title><style>{STYLE}</style></head><body>"
    );
    daemon(&mut o, p, word);
    queue(&mut o, p);
    feeds(&mut o, v);
    sources(&mut o, v);
    problems(&mut o, p);
    let _ = write!(
        o,
        "<footer>read {} · refreshes every {REFRESH_SECS} s · the same as JSON: \
         <code>/api/status</code> · queue <code>{}</code></footer></body></html>",
        esc(&iso(v.at)),
        esc(&v.queue_path)
    );
    o
}

fn daemon(o: &mut String, p: &Page<'_>, word: &str) {
    let v = p.view;
    let state = match &v.stats.pause {
        Some(pause) => format!(
            "<span class=\"bad\">DELIVERY PAUSED</span> since {} ({}): {}",
            esc(&iso(pause.since)),
            esc(pause.class.as_str()),
            esc(&pause.reason)
        ),
        None if word == "running" => "<span class=\"ok\">delivering</span>".to_string(),
        None => format!("<span class=\"bad\">{}</span>", esc(word)),
    };
    let _ = write!(
        o,
        "<header id=\"daemon\"><h1>tc-ingest</h1><p id=\"delivery\">{state}</p>\
         <p class=\"muted\">version {} · up {} · pid {} · rate {}</p></header>",
        esc(p.version),
        ago(i64::try_from(p.uptime_secs).unwrap_or(i64::MAX)),
        v.daemon.pid.map_or("-".into(), |p| p.to_string()),
        v.daemon
            .rate_fraction
            .map_or("-".into(), |r| format!("{:.0}% of the limit", r * 100.0)),
    );
}

fn queue(o: &mut String, p: &Page<'_>) {
    let s = &p.view.stats;
    head(
        o,
        "queue",
        "Queue",
        &[
            "pending",
            "leased",
            "batched",
            "held",
            "dead",
            "delivered (last hour)",
        ],
    );
    let n = |k: JobState| s.jobs(k).to_string();
    let class = if s.jobs(JobState::Dead) > 0 || s.jobs(JobState::Held) > 0 {
        "bad"
    } else {
        ""
    };
    row(
        o,
        class,
        &[
            n(JobState::Pending),
            n(JobState::Leased),
            n(JobState::Batched),
            n(JobState::Held),
            n(JobState::Dead),
            s.delivered_last_hour.to_string(),
        ],
    );
    o.push_str("</table>");
    sparkline(o, p.deliveries);
    if !s.held_owners.is_empty() {
        o.push_str("<h2>Owners held</h2><table id=\"owners\"><tr><th>owner</th><th>since</th><th>why</th></tr>");
        for h in &s.held_owners {
            row(
                o,
                "bad",
                &[
                    esc(&h.owner),
                    esc(&iso(h.held_at)),
                    esc(&format!("{}: {}", h.class, h.reason)),
                ],
            );
        }
        o.push_str("</table>");
    }
    if !s.batches.is_empty() {
        o.push_str("<h2>Batch jobs in flight</h2><table id=\"batches\"><tr><th>id</th><th>ThreatConnect id</th><th>owner</th><th>items</th><th>state</th><th>age</th></tr>");
        for b in &s.batches {
            row(
                o,
                "",
                &[
                    b.id.to_string(),
                    b.tc_batch_id.map_or("-".into(), |i| i.to_string()),
                    esc(&b.owner),
                    b.items.to_string(),
                    esc(&format!(
                        "{} {}",
                        b.state,
                        b.tc_status.as_deref().unwrap_or("")
                    )),
                    p.view.since(b.created_at),
                ],
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");
}

/// Deliveries per hour as bars, each with its count as a tooltip.
fn sparkline(o: &mut String, hours: &[u64]) {
    let (w, h) = (480u32, 64u32);
    let max = hours.iter().copied().max().unwrap_or(0).max(1);
    let slot = w / u32::try_from(hours.len().max(1)).unwrap_or(1);
    let total: u64 = hours.iter().sum();
    let _ = write!(
        o,
        "<figure><svg id=\"sparkline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"deliveries per hour, last {} hours\">",
        hours.len()
    );
    for (i, n) in hours.iter().enumerate() {
        let bar = ((*n as f64 / max as f64) * f64::from(h - 4)).round() as u32;
        let bar = if *n > 0 { bar.max(1) } else { 0 };
        let back = hours.len() - 1 - i;
        let _ = write!(
            o,
            "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{bar}\"><title>{n} delivered {}</title></rect>",
            i as u32 * slot + 1,
            h - bar,
            slot.saturating_sub(2).max(1),
            if back == 0 {
                "this hour".to_string()
            } else {
                format!("{back} h ago")
            }
        );
    }
    let _ = write!(
        o,
        "</svg><figcaption class=\"muted\">deliveries per hour, last {} hours: {total} in all</figcaption></figure>",
        hours.len()
    );
}

fn feeds(o: &mut String, v: &StatusView) {
    head(
        o,
        "feeds",
        "Feeds",
        &[
            "feed",
            "health",
            "last file",
            "holds",
            "new",
            "duplicate",
            "filtered",
            "rejected",
            "retired",
        ],
    );
    if v.feeds.is_empty() {
        o.push_str(
            "<tr><td colspan=\"9\" class=\"muted\">no named feeds ([[feeds]] name = ...)</td></tr>",
        );
    }
    let mut held = String::new();
    for f in &v.feeds {
        let st = &f.state;
        let health = f.health(v.at);
        let stale = health == Some(FeedHealth::Stale);
        let sum = |g: fn(&crate::queue::FeedOwner) -> u64| {
            st.owners.iter().map(g).sum::<u64>().to_string()
        };
        row(
            o,
            if stale { "bad" } else { "" },
            &[
                esc(&st.name),
                health.map_or("-".into(), |h| h.as_str().to_string()),
                st.last_file_at
                    .map_or("no file yet".into(), |t| format!("{} ago", v.since(t))),
                st.members.to_string(),
                sum(|w| w.new),
                sum(|w| w.duplicate),
                sum(|w| w.filtered),
                sum(|w| w.rejected),
                st.retired().to_string(),
            ],
        );
        if let Some(h) = &st.held {
            row(
                &mut held,
                "bad",
                &[
                    esc(&st.name),
                    format!("#{}", h.file_id),
                    h.would_retire.to_string(),
                    esc(&h.reason),
                    esc(&iso(h.held_at)),
                ],
            );
        }
    }
    o.push_str("</table></section>");
    if !held.is_empty() {
        head(
            o,
            "held",
            "Snapshots held for confirmation (tc-ingest retire --feed NAME)",
            &["feed", "file", "would retire", "why", "since"],
        );
        o.push_str(&held);
        o.push_str("</table></section>");
    }
}

fn sources(o: &mut String, v: &StatusView) {
    if v.sources.is_empty() {
        return;
    }
    head(
        o,
        "sources",
        "Pull sources",
        &["source", "kind", "health", "last success", "last error"],
    );
    for s in &v.sources {
        let st = &s.state;
        let health = s.health(v.at);
        let bad = matches!(health, Some(SourceHealth::Stale | SourceHealth::Failing));
        row(
            o,
            if bad { "bad" } else { "" },
            &[
                esc(&st.name),
                esc(&st.kind),
                health.map_or("not configured".into(), |h| h.as_str().to_string()),
                st.last_success_at
                    .map_or("never".into(), |t| format!("{} ago", v.since(t))),
                match (&st.last_error, st.consecutive_failures) {
                    (Some(e), n) if n > 0 => esc(&format!("{n} in a row: {e}")),
                    _ => String::new(),
                },
            ],
        );
    }
    o.push_str("</table></section>");
}

fn problems(o: &mut String, p: &Page<'_>) {
    head(
        o,
        "dead",
        "Latest dead letters (tc-ingest retry)",
        &["job", "indicator", "owner", "class", "why", "from"],
    );
    if p.dead.is_empty() {
        o.push_str("<tr><td colspan=\"6\" class=\"muted\">none</td></tr>");
    }
    for d in p.dead {
        let what = if d.action == "create" {
            format!("{} {}", d.kind, d.value)
        } else {
            format!("{} ({}) {}", d.kind, d.action, d.value)
        };
        row(
            o,
            "bad",
            &[
                d.id.to_string(),
                esc(&what),
                esc(&d.owner),
                esc(d.class.map_or("unknown", |c| c.as_str())),
                esc(d.message.as_deref().unwrap_or("")),
                esc(&match (&d.file, d.line) {
                    (Some(f), Some(l)) => format!("{f} line {l}"),
                    (Some(f), None) => f.clone(),
                    _ => String::new(),
                }),
            ],
        );
    }
    o.push_str("</table></section>");
    head(
        o,
        "rejects",
        "Latest rejects",
        &["file", "line", "rule", "why"],
    );
    if p.rejects.is_empty() {
        o.push_str("<tr><td colspan=\"4\" class=\"muted\">none</td></tr>");
    }
    for r in p.rejects {
        row(
            o,
            "",
            &[
                esc(&r.file),
                r.line.to_string(),
                esc(&r.rule),
                esc(&r.reason),
            ],
        );
    }
    o.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped_and_the_policy_hashes_the_style() {
        assert_eq!(
            super::esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert!(super::CSP.starts_with("default-src 'none'; style-src 'sha256-"));
    }
}
