//! Timestamps (`first_seen`, `last_seen`): RFC 3339, `YYYY-MM-DD` (midnight
//! UTC), `YYYY-MM-DD HH:MM:SS` (UTC: how abuse.ch and DataPlane write them)
//! or Unix seconds, to RFC 3339 in UTC to the second, the form
//! ThreatConnect v3 writes (`2026-10-04T12:34:56Z`).

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, UtcOffset};

use super::{Reject, RejectRule};

/// Normalizes the timestamp `s` of the field `field` (named in the message).
///
/// # Errors
/// `invalid-timestamp` when it is none of the accepted forms, or falls
/// outside the years 1 to 9999.
pub fn timestamp(field: &str, s: &str) -> Result<String, Reject> {
    let s = s.trim();
    parse(s).map(format).ok_or_else(|| {
        Reject::new(
            RejectRule::InvalidTimestamp,
            format!(
                "{field} {s:?} is not a timestamp (RFC 3339 such as \"2026-10-04T12:34:56Z\", \
                 a date YYYY-MM-DD, YYYY-MM-DD HH:MM:SS in UTC, or Unix seconds)"
            ),
        )
    })
}

fn parse(s: &str) -> Option<OffsetDateTime> {
    let t = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        OffsetDateTime::from_unix_timestamp(s.parse().ok()?).ok()?
    } else if let Some(d) = date(s) {
        d.midnight().assume_utc()
    } else if let Some((d, t)) = s.split_once(' ').filter(|(_, t)| !t.contains(['+', 'Z']))
        && let Some(d) = date(d)
        && let Ok(t) = time::Time::parse(
            t.trim_end_matches(" UTC"),
            time::macros::format_description!("[hour]:[minute]:[second]"),
        )
    {
        d.with_time(t).assume_utc()
    } else {
        OffsetDateTime::parse(s, &Rfc3339)
            .ok()?
            .to_offset(UtcOffset::UTC)
    };
    (1..=9999).contains(&t.year()).then_some(t)
}

/// `YYYY-MM-DD` exactly.
fn date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u16> {
        let part = &s[from..to];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(i32::from(year), month, u8::try_from(day).ok()?).ok()
}

fn format(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
