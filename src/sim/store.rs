//! The indicators the simulator holds, and the index that finds them by
//! owner, type and identifier (a File is filed under each of its hashes).

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use super::reply::{Failure, not_found};
use super::{SimAttribute, SimIndicator};
use crate::indicator::IndicatorType;

#[derive(Default)]
pub(super) struct Store {
    pub(super) indicators: Vec<SimIndicator>,
    /// (owner, type, identifier) to position in `indicators`.
    index: HashMap<(String, IndicatorType, String), usize>,
    /// The id the next stored attribute gets.
    next_attribute_id: u64,
}

/// A validated create: what [`Store::upsert`] needs.
pub(super) struct NewIndicator<'a> {
    pub(super) owner: &'a str,
    pub(super) kind: IndicatorType,
    /// The value as ThreatConnect summarizes it (`md5 : sha1` for a File).
    pub(super) summary: String,
    /// What the indicator can be found by in a path (each hash of a File).
    pub(super) identifiers: Vec<String>,
    pub(super) rating: Option<f64>,
    pub(super) confidence: Option<u64>,
}

/// What [`Store::upsert`] did.
pub(super) enum Upsert {
    /// Stored (new, or updated in place); its position in the store.
    Stored(usize),
    /// Already there, and `refuse_existing` said not to update it.
    Exists,
}

impl Store {
    /// The position of the indicator `owner` has under `identifier`.
    fn find(&self, owner: &str, kind: IndicatorType, identifier: &str) -> Option<usize> {
        self.index
            .get(&(owner.to_string(), kind, identifier.to_string()))
            .copied()
    }

    /// Creates the indicator, or updates the one already filed under any of
    /// its identifiers (rating and confidence given replace the held ones).
    pub(super) fn upsert(&mut self, new: NewIndicator<'_>, refuse_existing: bool) -> Upsert {
        let existing = new
            .identifiers
            .iter()
            .find_map(|i| self.find(new.owner, new.kind, i));
        let idx = match existing {
            Some(_) if refuse_existing => return Upsert::Exists,
            Some(idx) => {
                let ind = &mut self.indicators[idx];
                ind.create_count += 1;
                ind.rating = new.rating.or(ind.rating);
                ind.confidence = new.confidence.or(ind.confidence);
                idx
            }
            None => {
                let idx = self.indicators.len();
                self.indicators.push(SimIndicator {
                    id: idx as u64 + 1,
                    owner: new.owner.to_string(),
                    kind: new.kind.tc_name().to_string(),
                    value: new.summary,
                    rating: new.rating,
                    confidence: new.confidence,
                    tags: BTreeSet::new(),
                    attributes: Vec::new(),
                    create_count: 1,
                    first_seen: None,
                    last_seen: None,
                    batch_items: 0,
                    security_labels: BTreeSet::new(),
                    external_date_expires: None,
                    external_last_modified: None,
                    active: true,
                    deactivations: 0,
                    reactivations: 0,
                    deleted: false,
                });
                idx
            }
        };
        for i in new.identifiers {
            self.index.insert((new.owner.to_string(), new.kind, i), idx);
        }
        Upsert::Stored(idx)
    }

    /// The indicator `owner` has under `identifier`, or ThreatConnect's 404.
    pub(super) fn get(
        &self,
        owner: &str,
        kind: IndicatorType,
        identifier: &str,
    ) -> Result<&SimIndicator, Failure> {
        let idx = self.find(owner, kind, identifier).ok_or_else(not_found)?;
        Ok(&self.indicators[idx])
    }

    /// Like [`Store::get`], to change the indicator.
    pub(super) fn get_mut(
        &mut self,
        owner: &str,
        kind: IndicatorType,
        identifier: &str,
    ) -> Result<&mut SimIndicator, Failure> {
        let idx = self.find(owner, kind, identifier).ok_or_else(not_found)?;
        Ok(&mut self.indicators[idx])
    }

    /// The position of `owner`'s indicator named in a v3 path: by id (all
    /// digits), else by summary under any type.
    pub(super) fn find_v3(&self, owner: &str, named: &str) -> Option<usize> {
        if !named.is_empty() && named.bytes().all(|b| b.is_ascii_digit()) {
            let idx = named.parse::<usize>().ok()?.checked_sub(1)?;
            let ind = self.indicators.get(idx)?;
            return (ind.owner == owner && !ind.deleted).then_some(idx);
        }
        IndicatorType::ALL
            .into_iter()
            .find_map(|k| self.find(owner, k, named))
    }

    /// Deletes the indicator at `idx`: no call finds it again, and a later
    /// create makes a new one.
    pub(super) fn delete(&mut self, idx: usize) {
        self.indicators[idx].deleted = true;
        self.index.retain(|_, i| *i != idx);
    }

    /// `owner`'s indicators whose summary is `summary`, active or not.
    pub(super) fn by_summary<'a>(
        &'a self,
        owner: &'a str,
        summary: &'a str,
    ) -> impl Iterator<Item = &'a SimIndicator> + 'a {
        self.indicators
            .iter()
            .filter(move |i| !i.deleted && i.owner == owner && i.value == summary)
    }

    /// Adds an attribute (a repeat is added again, as v2 does) with an id
    /// and the time it was added.
    pub(super) fn add_attribute(
        &mut self,
        owner: &str,
        kind: IndicatorType,
        identifier: &str,
        attr_kind: &str,
        value: &str,
    ) -> Result<(), Failure> {
        let id = self.next_attribute_id + 1;
        let date_added = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        // v2 attributes append, as ThreatConnect's do: the same attribute
        // posted twice is there twice (tc-api.md section 8).
        let ind = self.get_mut(owner, kind, identifier)?;
        ind.attributes.push(SimAttribute {
            kind: attr_kind.to_string(),
            value: value.to_string(),
            id,
            date_added,
        });
        self.next_attribute_id = id;
        Ok(())
    }
}
