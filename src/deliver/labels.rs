//! The instance's security labels (tc-api.md s.9: instance-wide, names
//! compared exactly): read before the first label is sent, and again after
//! every reload, so that a label the instance lacks is never sent. An
//! indicator whose label the instance lacks is delivered without it; the
//! label is named once in the log and listed in `status`
//! (`labels_missing`). A refusal naming a label (the list changed, or could
//! not be read) puts the label on the same list.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::{Api, Delivery};

/// A failed read of the list is tried again after this long.
const RETRY_READ: Duration = Duration::from_secs(60);

/// What is known of the instance's labels.
#[derive(Debug, Default)]
pub struct Labels {
    /// The instance's labels; `None` until read (labels are then sent as
    /// they are, and a refusal names the missing one).
    known: RwLock<Option<BTreeSet<String>>>,
    /// Labels left out because the instance lacks them.
    missing: Mutex<BTreeSet<String>>,
    /// The last read: with which client (a reload brings another; held,
    /// so that no later one can take its place), when, and whether it
    /// succeeded. One read at a time.
    last_read: tokio::sync::Mutex<Option<(Arc<Api>, Instant, bool)>>,
}

impl Labels {
    /// Whether `label` may be sent.
    pub fn allows(&self, label: &str) -> bool {
        let known = self.known.read().expect("labels");
        let allowed = known.as_ref().is_none_or(|k| k.contains(label))
            && !self.missing.lock().expect("labels").contains(label);
        drop(known);
        if !allowed {
            self.note_missing(label);
        }
        allowed
    }

    /// Whether the instance's list, read, has `label`.
    pub fn listed(&self, label: &str) -> bool {
        self.known
            .read()
            .expect("labels")
            .as_ref()
            .is_some_and(|k| k.contains(label))
    }

    /// The labels of `all` that may be sent.
    pub fn sendable<'a>(&self, all: &'a [String]) -> Vec<&'a str> {
        all.iter()
            .map(String::as_str)
            .filter(|l| self.allows(l))
            .collect()
    }

    /// The API said the instance has no such label.
    pub fn refused(&self, label: &str) {
        if let Some(k) = self.known.write().expect("labels").as_mut() {
            k.remove(label);
        }
        self.note_missing(label);
    }

    /// Labels left out so far, for `status`.
    pub fn missing(&self) -> Vec<String> {
        self.missing
            .lock()
            .expect("labels")
            .iter()
            .cloned()
            .collect()
    }

    fn note_missing(&self, label: &str) {
        if self
            .missing
            .lock()
            .expect("labels")
            .insert(label.to_string())
        {
            tracing::warn!(
                label,
                "the ThreatConnect instance has no security label of this name: indicators carrying it are delivered without it (name the instance's label in [security_labels], or create it)"
            );
        }
    }

    /// Takes the instance's list; labels it now has are no longer missing.
    fn set(&self, names: BTreeSet<String>) {
        self.missing
            .lock()
            .expect("labels")
            .retain(|l| !names.contains(l));
        *self.known.write().expect("labels") = Some(names);
    }
}

impl Delivery {
    /// Reads the instance's labels unless this client read them already
    /// (or failed to, less than a minute ago): before a job with labels is
    /// sent. Delivery goes on whatever the read gives.
    pub(super) async fn read_labels(&self) {
        let api: Arc<Api> = self.api.borrow().clone();
        let mut last = self.labels.last_read.lock().await;
        if let Some((by, at, ok)) = &*last
            && Arc::ptr_eq(by, &api)
            && (*ok || at.elapsed() < RETRY_READ)
        {
            return;
        }
        self.throttle.wait().await;
        let ok = match api.client.security_labels().await {
            Ok(names) => {
                tracing::info!(labels = names.len(), "read the instance's security labels");
                self.labels.set(names.into_iter().collect());
                true
            }
            Err(outcome) => {
                tracing::warn!(error = %outcome.message(), "cannot read the instance's security labels: labels are sent as they are until a read succeeds");
                false
            }
        };
        *last = Some((api, Instant::now(), ok));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_labels_are_left_out_and_listed_once_the_list_is_read() {
        let l = Labels::default();
        let all = vec!["TLP:AMBER".to_string(), "TLP:CLEAR".to_string()];
        // Not read yet: sent as they are.
        assert_eq!(l.sendable(&all), ["TLP:AMBER", "TLP:CLEAR"]);
        l.set(["TLP:AMBER".to_string(), "TLP:RED".to_string()].into());
        assert_eq!(l.sendable(&all), ["TLP:AMBER"]);
        assert_eq!(l.missing(), ["TLP:CLEAR"]);
        l.refused("TLP:AMBER");
        assert!(l.sendable(&all).is_empty());
        // Created on the instance since: the next read brings it back.
        l.set(["TLP:AMBER".to_string(), "TLP:CLEAR".to_string()].into());
        assert_eq!(l.sendable(&all), ["TLP:AMBER", "TLP:CLEAR"]);
        assert!(l.missing().is_empty());
    }
}
