//! Mapping a completed batch job's results to its jobs: a pure function
//! of the items (in data-file order), ThreatConnect's item errors and its
//! counts.

use std::collections::HashSet;

use crate::api::batch::{self as wire, ItemError};
use crate::api::outcome::unknown_security_label;
use crate::queue::{BatchCandidate, BatchOutcome};

/// What becomes of each job of a completed batch job: refused items are
/// buried with ThreatConnect's reason; unprocessed items go back to pending:
/// those after the item a job-level error stopped at, else the last
/// `unprocessCount` (processing goes in order). Nothing is counted delivered
/// or unprocessed on a guess: the item a job-level error names goes back as
/// a call of unknown outcome (per indicator, attributes looked for first),
/// and when the errors and counts do not tell every item's fault apart (an
/// error tied to no item, fewer items tied than `errorCount`, counts that do
/// not add up to the items, unprocessed items not where the counts say),
/// every item not refused goes back that way.
pub(super) fn map_results(
    items: &[BatchCandidate],
    errors: &[ItemError],
    status: &wire::Status,
    tc_batch_id: i64,
) -> BatchOutcome {
    let mut out = BatchOutcome {
        error_count: status.error_count,
        success_count: status.success_count,
        unprocess_count: status.unprocess_count,
        ..BatchOutcome::default()
    };
    let mut refused: HashSet<usize> = HashSet::new();
    // Items a job-level error stopped at: not refused, not known created.
    let mut stopped_at: HashSet<usize> = HashSet::new();
    // Items refused only for a security label the instance lacks: they go
    // back to pending and are sent again without it.
    let mut relabel: HashSet<usize> = HashSet::new();
    let mut untied = false;
    let mut fatal = None;
    for e in errors {
        let index = e.item.filter(|i| *i < items.len()).or_else(|| {
            let s = e.summary.as_deref()?;
            items.iter().position(|c| c.value == s)
        });
        if e.fatal {
            fatal = Some(e.reason.clone());
        }
        let Some(i) = index else {
            untied = true;
            continue;
        };
        if e.fatal {
            // A job-level error names no item's fault, whatever path it gives.
            stopped_at.insert(i);
        } else if unknown_security_label(&e.reason).is_some() {
            relabel.insert(i);
        } else if refused.insert(i) {
            out.refused.push((items[i].id, e.reason.clone()));
        }
    }
    let open = |i: &usize| !refused.contains(i) && !stopped_at.contains(i) && !relabel.contains(i);
    let unprocessed: Vec<usize> = match stopped_at.iter().min() {
        Some(&stop) => (stop + 1..items.len()).filter(open).collect(),
        None => {
            let mut last: Vec<usize> = (0..items.len())
                .rev()
                .filter(open)
                .take(status.unprocess_count as usize)
                .collect();
            last.reverse();
            last
        }
    };
    let tied = (refused.len() + stopped_at.len() + relabel.len()) as u64;
    let counted = status.success_count + status.error_count + status.unprocess_count;
    let unsure = untied
        || tied < status.error_count
        || counted != items.len() as u64
        || unprocessed.len() as u64 != status.unprocess_count;
    if !unsure {
        out.unprocessed = unprocessed.iter().map(|&i| items[i].id).collect();
    }
    let mut relabel: Vec<usize> = relabel.into_iter().collect();
    relabel.sort_unstable();
    out.unprocessed.extend(relabel.iter().map(|&i| items[i].id));
    out.unprocessed_reason = match &fatal {
        Some(r) => format!("batch job {tc_batch_id} stopped before this item: {r}"),
        None => format!("batch job {tc_batch_id} did not process this item"),
    };
    out.uncertain = (0..items.len())
        .filter(|i| {
            !refused.contains(i) && !relabel.contains(i) && (unsure || stopped_at.contains(i))
        })
        .map(|i| items[i].id)
        .collect();
    out.uncertain_reason = match &fatal {
        Some(r) => format!(
            "batch job {tc_batch_id} may or may not have processed this item ({r}): \
             it goes per indicator"
        ),
        None => format!(
            "batch job {tc_batch_id} may or may not have processed this item (its errors \
             and counts do not say): it goes per indicator"
        ),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<BatchCandidate> {
        (0..n)
            .map(|i| BatchCandidate {
                id: 100 + i as i64,
                kind: "Host".into(),
                value: format!("h{i}.com"),
                payload: "{}".into(),
            })
            .collect()
    }

    fn status(items: u64, errors: u64, unprocessed: u64) -> wire::Status {
        wire::Status {
            status: "Completed".into(),
            error_count: errors,
            success_count: items.saturating_sub(errors + unprocessed),
            unprocess_count: unprocessed,
        }
    }

    fn error(item: Option<usize>, summary: Option<&str>, reason: &str) -> ItemError {
        ItemError {
            item,
            summary: summary.map(String::from),
            reason: reason.into(),
            fatal: reason.contains("unexpected Exception"),
        }
    }

    #[test]
    fn refused_items_are_tied_to_their_jobs_by_path_or_summary() {
        let errs = [
            error(Some(2), None, "bad"),
            error(None, Some("h4.com"), "excluded"),
        ];
        let out = map_results(&items(6), &errs, &status(6, 2, 0), 9);
        assert_eq!(
            out.refused,
            vec![(102, "bad".into()), (104, "excluded".into())]
        );
        assert!(out.unprocessed.is_empty() && out.uncertain.is_empty());
    }

    #[test]
    fn unprocessed_items_are_the_last_ones_and_untied_errors_make_the_rest_uncertain() {
        // A job-level error buries nothing; the item it stopped at is not
        // known to be created: it goes back as of unknown outcome; the items
        // after it were not processed.
        let fatal = "Encountered an unexpected Exception while processing batch job";
        let errs = [error(Some(1), None, fatal)];
        let out = map_results(&items(5), &errs, &status(5, 1, 3), 9);
        assert!(out.refused.is_empty());
        assert_eq!(out.unprocessed, vec![102, 103, 104]);
        assert_eq!(out.uncertain, vec![101]);
        assert!(out.unprocessed_reason.contains(fatal));
        // Counted another way (the stopped item among the unprocessed):
        // which were processed is a guess, so none is counted either way.
        let counted_twice = wire::Status {
            success_count: 1,
            ..status(5, 1, 4)
        };
        let out = map_results(&items(5), &errs, &counted_twice, 9);
        assert!(out.unprocessed.is_empty());
        assert_eq!(out.uncertain, vec![100, 101, 102, 103, 104]);
        // Without a job-level error, the last ones are the unprocessed.
        let errs = [error(Some(0), None, "bad")];
        let out = map_results(&items(5), &errs, &status(5, 1, 2), 9);
        assert_eq!(out.unprocessed, vec![103, 104]);
        assert!(out.uncertain.is_empty());
        // One naming no item: any of the items may be it.
        let errs = [error(None, None, fatal)];
        let out = map_results(&items(5), &errs, &status(5, 1, 2), 9);
        assert!(out.unprocessed.is_empty());
        assert_eq!(out.uncertain, vec![100, 101, 102, 103, 104]);
        // An error tied to nothing.
        let errs = [error(None, Some("nowhere"), "what")];
        let out = map_results(&items(3), &errs, &status(3, 1, 0), 9);
        assert_eq!(out.uncertain, vec![100, 101, 102]);
        // Fewer items tied than errorCount (two entries for one item do not
        // make two): the untold one could be any.
        for errs in [
            vec![error(Some(0), None, "bad")],
            vec![error(Some(0), None, "bad"), error(Some(0), None, "bad tag")],
        ] {
            let out = map_results(&items(3), &errs, &status(3, 2, 0), 9);
            assert_eq!(out.refused, vec![(100, "bad".into())]);
            assert_eq!(out.uncertain, vec![101, 102]);
        }
        // Counts that leave an item unaccounted for: the rest is uncertain.
        let short = wire::Status {
            success_count: 1,
            ..status(3, 0, 0)
        };
        let out = map_results(&items(3), &[], &short, 9);
        assert_eq!(out.uncertain, vec![100, 101, 102]);
    }
}
