//! The consent ledger (R-AZ-3, R-AZ-5, R-AZ-6): consents as state events in the audit store's
//! state log — written durably before the API answers, replayed at start — projected in memory
//! for constant-time checks per request.
//!
//! Built so far: acquisition consents (subject × data categories × purpose), their withdrawal,
//! and the subject's view of current consents and full history (`/.phr/consents`, served by the
//! proxy). Routes that take health data in (POST, PUT, PATCH on a health category) need the data
//! subject's live acquisition consent for the category (and the stated purpose, when the route
//! lists purposes). Provision consents and provision records (R-AZ-4, R-LOG-3) are not built yet.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditError, AuditSink, StateEvent};
use crate::decision::{Reason, Refusal};
use crate::policy::DataCategory;

/// What a consent allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    /// Acquisition of health data (R-AZ-3).
    Acquisition,
}

/// One consent, as the subject sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Consent {
    /// Its id.
    pub id: String,
    /// What it allows.
    pub kind: ConsentKind,
    /// The data categories it covers.
    pub categories: Vec<DataCategory>,
    /// The purpose it was given for.
    pub purpose: String,
    /// When it was given (RFC 3339).
    pub granted_at: String,
    /// When it was withdrawn, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<String>,
}

/// Live acquisition consents of one subject for one category and purpose.
struct Live {
    category: DataCategory,
    purpose: String,
    /// How many live consents say so (withdrawing one of two leaves the other).
    count: u32,
}

#[derive(Default)]
struct Ledger {
    /// Every consent of each subject, in the order given (the history).
    by_subject: HashMap<String, Vec<Consent>>,
    /// Each subject's live (category, purpose) pairs: a hash lookup by the borrowed subject,
    /// then a scan of a handful of entries.
    live: HashMap<String, Vec<Live>>,
}

/// The ledger of every subject's consents.
#[derive(Default)]
pub struct ConsentLedger {
    ledger: RwLock<Ledger>,
}

impl std::fmt::Debug for ConsentLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentLedger").finish_non_exhaustive()
    }
}

/// Why a consent call was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// No consent with that id for this subject (or already withdrawn).
    #[error("no live consent with this id")]
    NotFound,
    /// The state log could not record it: nothing changed.
    #[error("not recorded: {0}")]
    Audit(#[from] AuditError),
}

impl ConsentLedger {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ledger> {
        // Updates are whole-entry inserts and counter changes: a poisoned ledger stays usable.
        self.ledger.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `subject` has a live acquisition consent for `category` and `purpose` (any
    /// purpose when `None`).
    pub fn allows_acquisition(
        &self,
        subject: &str,
        category: DataCategory,
        purpose: Option<&str>,
    ) -> bool {
        self.read().live.get(subject).is_some_and(|live| {
            live.iter()
                .any(|l| l.category == category && purpose.is_none_or(|p| l.purpose == p))
        })
    }

    /// The check on a request that takes health data in: refuse without a live acquisition
    /// consent of the data subject.
    pub fn check_acquisition(
        &self,
        subject: &str,
        category: DataCategory,
        purpose: Option<&str>,
    ) -> Result<(), Refusal> {
        if self.allows_acquisition(subject, category, purpose) {
            return Ok(());
        }
        Err(Refusal::new(
            Reason::AccessConsentRequired,
            match purpose {
                Some(p) => format!(
                    "no acquisition consent of the data subject for `{}` data and the purpose `{p}`; the subject can give one at /.phr/consents",
                    category.as_str()
                ),
                None => format!(
                    "no acquisition consent of the data subject for `{}` data; the subject can give one at /.phr/consents",
                    category.as_str()
                ),
            },
        ))
    }

    /// A subject's consents, current and past, in the order given.
    pub fn of(&self, subject: &str) -> Vec<Consent> {
        self.read()
            .by_subject
            .get(subject)
            .cloned()
            .unwrap_or_default()
    }

    /// Live consents in the ledger (all subjects).
    pub fn live_count(&self) -> usize {
        self.read()
            .live
            .values()
            .flat_map(|l| l.iter().map(|e| e.count as usize))
            .sum()
    }

    /// Give a consent: recorded durably, then applied. Returns its id.
    pub async fn grant(
        &self,
        audit: &AuditSink,
        subject: &str,
        kind: ConsentKind,
        categories: Vec<DataCategory>,
        purpose: String,
    ) -> Result<String, ConsentError> {
        let event = StateEvent::ConsentGranted {
            consent: uuid::Uuid::now_v7().to_string(),
            subject: subject.to_owned(),
            kind,
            categories,
            purpose,
        };
        audit.record_state(event.clone()).await?;
        let id = match &event {
            StateEvent::ConsentGranted { consent, .. } => consent.clone(),
            _ => String::new(),
        };
        self.apply(&event, &crate::audit::record::now_rfc3339());
        Ok(id)
    }

    /// Withdraw one of `subject`'s live consents: recorded durably, then applied; effective on
    /// the next request (R-AZ-6).
    pub async fn withdraw(
        &self,
        audit: &AuditSink,
        subject: &str,
        consent: &str,
    ) -> Result<(), ConsentError> {
        let live = self.read().by_subject.get(subject).is_some_and(|list| {
            list.iter()
                .any(|c| c.id == consent && c.withdrawn_at.is_none())
        });
        if !live {
            return Err(ConsentError::NotFound);
        }
        let event = StateEvent::ConsentWithdrawn {
            consent: consent.to_owned(),
            subject: subject.to_owned(),
        };
        audit.record_state(event.clone()).await?;
        self.apply(&event, &crate::audit::record::now_rfc3339());
        Ok(())
    }

    /// Apply a consent event recorded at `time`.
    pub fn apply(&self, event: &StateEvent, time: &str) {
        let mut ledger = self.write();
        match event {
            StateEvent::ConsentGranted {
                consent,
                subject,
                kind,
                categories,
                purpose,
            } => {
                let live = ledger.live.entry(subject.clone()).or_default();
                for category in categories {
                    match live
                        .iter_mut()
                        .find(|l| l.category == *category && &l.purpose == purpose)
                    {
                        Some(l) => l.count += 1,
                        None => live.push(Live {
                            category: *category,
                            purpose: purpose.clone(),
                            count: 1,
                        }),
                    }
                }
                ledger
                    .by_subject
                    .entry(subject.clone())
                    .or_default()
                    .push(Consent {
                        id: consent.clone(),
                        kind: *kind,
                        categories: categories.clone(),
                        purpose: purpose.clone(),
                        granted_at: time.to_owned(),
                        withdrawn_at: None,
                    });
            }
            StateEvent::ConsentWithdrawn { consent, subject } => {
                let Some(entry) = ledger
                    .by_subject
                    .get_mut(subject)
                    .and_then(|list| list.iter_mut().find(|c| &c.id == consent))
                    .filter(|c| c.withdrawn_at.is_none())
                else {
                    return;
                };
                entry.withdrawn_at = Some(time.to_owned());
                let (categories, purpose) = (entry.categories.clone(), entry.purpose.clone());
                if let Some(live) = ledger.live.get_mut(subject) {
                    for category in categories {
                        if let Some(l) = live
                            .iter_mut()
                            .find(|l| l.category == category && l.purpose == purpose)
                        {
                            l.count = l.count.saturating_sub(1);
                        }
                    }
                    live.retain(|l| l.count > 0);
                    if live.is_empty() {
                        ledger.live.remove(subject);
                    }
                }
            }
            _ => {}
        }
    }

    /// Replay consent events from the state log (`audit::segment::read_replayed_state`).
    pub fn replay<'a>(
        &self,
        records: impl IntoIterator<Item = &'a crate::audit::segment::StateRecord>,
    ) -> usize {
        crate::audit::segment::replay_matching(
            records,
            |e| {
                matches!(
                    e,
                    StateEvent::ConsentGranted { .. } | StateEvent::ConsentWithdrawn { .. }
                )
            },
            |r| self.apply(&r.event, &r.time),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(id: &str, subject: &str, purpose: &str) -> StateEvent {
        StateEvent::ConsentGranted {
            consent: id.into(),
            subject: subject.into(),
            kind: ConsentKind::Acquisition,
            categories: vec![DataCategory::Vitals, DataCategory::Checkup],
            purpose: purpose.into(),
        }
    }

    #[test]
    fn grant_withdraw_and_history() {
        let ledger = ConsentLedger::default();
        let vitals = DataCategory::Vitals;
        assert!(!ledger.allows_acquisition("p-1", vitals, None));
        ledger.apply(&granted("c1", "p-1", "self-management"), "t1");
        ledger.apply(&granted("c2", "p-1", "self-management"), "t2");
        assert!(ledger.allows_acquisition("p-1", vitals, Some("self-management")));
        assert!(ledger.allows_acquisition("p-1", vitals, None));
        assert!(!ledger.allows_acquisition("p-1", vitals, Some("research")));
        assert!(!ledger.allows_acquisition("p-1", DataCategory::Medication, None));
        assert!(!ledger.allows_acquisition("p-2", vitals, None));
        // Withdrawing one of two identical consents leaves the other in force.
        let withdraw = |id: &str| StateEvent::ConsentWithdrawn {
            consent: id.into(),
            subject: "p-1".into(),
        };
        ledger.apply(&withdraw("c1"), "t3");
        assert!(ledger.allows_acquisition("p-1", vitals, Some("self-management")));
        ledger.apply(&withdraw("c2"), "t4");
        assert!(!ledger.allows_acquisition("p-1", vitals, None));
        // A second withdrawal changes nothing; the history keeps both with their times.
        ledger.apply(&withdraw("c2"), "t5");
        let history = ledger.of("p-1");
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].withdrawn_at.as_deref(), Some("t4"));
        assert_eq!(ledger.live_count(), 0);
        // Another subject cannot withdraw p-1's consent.
        ledger.apply(&granted("c3", "p-1", "treatment"), "t6");
        ledger.apply(
            &StateEvent::ConsentWithdrawn {
                consent: "c3".into(),
                subject: "p-2".into(),
            },
            "t7",
        );
        assert!(ledger.allows_acquisition("p-1", vitals, Some("treatment")));
    }
}
