//! The consent ledger (R-AZ-3 … R-AZ-6, R-LOG-3): consents as state events in the audit store's
//! state log — written durably before the API answers, replayed at start — projected in memory
//! for constant-time checks per request.
//!
//! Acquisition consents (subject × data categories × purpose), their withdrawal, and the
//! subject's view of current consents and full history (`/.phr/consents`, served by the
//! proxy). Routes that take health data in (POST, PUT, PATCH on a health category) need the data
//! subject's live acquisition consent for the category (and the stated purpose, when the route
//! lists purposes).
//!
//! Provision consents (R-AZ-4) name a registered recipient, a purpose and categories (and the
//! recipient's country when it is abroad); a recipient's read is served only under one, and data
//! a recipient sends in needs the acquisition consent above. Every release to a recipient and
//! every receipt from one is first recorded durably as a `third_party_record` state event
//! (R-LOG-3); the subject reads those records at `/.phr/provisions`.

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
    /// Provision of data to a named recipient (R-AZ-4).
    Provision,
}

/// What a subject agrees to: the body of a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentTerms {
    /// What it allows.
    pub kind: ConsentKind,
    /// The data categories it covers.
    pub categories: Vec<DataCategory>,
    /// The purpose it is given for.
    pub purpose: String,
    /// For a provision consent: the recipient's id.
    pub recipient: Option<String>,
    /// For a provision consent to a recipient abroad: its country, named in the consent.
    pub country: Option<String>,
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
    /// The recipient, for a provision consent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The recipient's country, when it is abroad.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// When it was given (RFC 3339).
    pub granted_at: String,
    /// When it was withdrawn, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<String>,
}

/// Which way a subject's data went between the service and a recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Released to the recipient (a read): needs the subject's provision consent.
    Provided,
    /// Sent in by the recipient (a write): needs the subject's acquisition consent.
    Received,
}

/// One release of a subject's data to a recipient, or one receipt from it (R-LOG-3), as the
/// subject sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProvisionRecord {
    /// When it happened (RFC 3339).
    pub time: String,
    /// Provided to the recipient, or received from it.
    pub direction: Direction,
    /// The recipient's id.
    pub recipient: String,
    /// The data categories released.
    pub categories: Vec<DataCategory>,
    /// The purpose the recipient stated.
    pub purpose: String,
    /// The request's id, to match the access record.
    pub request_id: String,
    /// The route it was released on.
    pub route: String,
    /// The status released with it.
    pub status: u16,
}

/// What a live consent says, for one category: the key a request is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Terms {
    kind: ConsentKind,
    category: DataCategory,
    purpose: String,
    recipient: Option<String>,
    country: Option<String>,
}

impl Consent {
    /// What it allows, category by category: the keys of the live index.
    fn terms(&self) -> impl Iterator<Item = Terms> + '_ {
        self.categories.iter().map(|category| Terms {
            kind: self.kind,
            category: *category,
            purpose: self.purpose.clone(),
            recipient: self.recipient.clone(),
            country: self.country.clone(),
        })
    }
}

/// Live consents of one subject with the same terms.
struct Live {
    terms: Terms,
    /// How many live consents say so (withdrawing one of two leaves the other).
    count: u32,
}

#[derive(Default)]
struct Ledger {
    /// Every consent of each subject, in the order given (the history).
    by_subject: HashMap<String, Vec<Consent>>,
    /// Each subject's live terms: a hash lookup by the borrowed subject, then a scan of a
    /// handful of entries.
    live: HashMap<String, Vec<Live>>,
    /// Each subject's provision records, in order (R-LOG-3).
    provisions: HashMap<String, Vec<ProvisionRecord>>,
}

/// The ledger of every subject's consents and of the data provided under them.
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

/// The exchange with a recipient a request asks for: a provision is checked against the
/// ledger; either direction is recorded before the response is released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provision {
    /// Provided (a read) or received (a write).
    pub direction: Direction,
    /// The recipient.
    pub recipient: std::sync::Arc<crate::access::Recipient>,
    /// The data subject.
    pub subject: String,
    /// The route's data category.
    pub category: DataCategory,
    /// The purpose the recipient stated.
    pub purpose: std::sync::Arc<str>,
}

impl ConsentLedger {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ledger> {
        // Updates are whole-entry inserts and counter changes: a poisoned ledger stays usable.
        self.ledger.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn any_live(&self, subject: &str, matches: impl Fn(&Terms) -> bool) -> bool {
        self.read()
            .live
            .get(subject)
            .is_some_and(|live| live.iter().any(|l| matches(&l.terms)))
    }

    /// Whether `subject` has a live acquisition consent for `category` and `purpose` (any
    /// purpose when `None`).
    pub fn allows_acquisition(
        &self,
        subject: &str,
        category: DataCategory,
        purpose: Option<&str>,
    ) -> bool {
        self.any_live(subject, |t| {
            t.kind == ConsentKind::Acquisition
                && t.category == category
                && purpose.is_none_or(|p| t.purpose == p)
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

    /// The check on a recipient's request (R-AZ-4): the data subject's live provision consent
    /// for this recipient, purpose and category — naming the recipient's country when it is
    /// abroad.
    pub fn check_provision(&self, provision: &Provision) -> Result<(), Refusal> {
        let recipient = &provision.recipient;
        let country = recipient.abroad.then(|| &*recipient.country);
        let allowed = self.any_live(&provision.subject, |t| {
            t.kind == ConsentKind::Provision
                && t.category == provision.category
                && t.purpose == *provision.purpose
                && t.recipient.as_deref() == Some(&*recipient.id)
                && (country.is_none() || t.country.as_deref() == country)
        });
        if allowed {
            return Ok(());
        }
        // Says what is missing, never whether the subject exists or has other consents.
        Err(Refusal::new(
            Reason::AccessProvisionConsentRequired,
            format!(
                "no provision consent of the data subject for the recipient `{}`, the purpose `{}` and `{}` data{}",
                recipient.id,
                provision.purpose,
                provision.category.as_str(),
                match country {
                    Some(c) => format!(" naming the country `{c}`"),
                    None => String::new(),
                }
            ),
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

    /// The records of a subject's data provided to recipients, in order (R-LOG-3).
    pub fn provisions_of(&self, subject: &str) -> Vec<ProvisionRecord> {
        self.read()
            .provisions
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
        terms: ConsentTerms,
    ) -> Result<String, ConsentError> {
        let id = uuid::Uuid::now_v7().to_string();
        let event = StateEvent::ConsentGranted {
            consent: id.clone(),
            subject: subject.to_owned(),
            kind: terms.kind,
            categories: terms.categories,
            purpose: terms.purpose,
            recipient: terms.recipient,
            country: terms.country,
        };
        audit.record_state(event.clone()).await?;
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

    /// Record that `provision`'s data is being released (or was received) for `request_id` on
    /// `route` with `status` (R-LOG-3). Durable when this returns `Ok`; on `Err` the response
    /// must not be released.
    pub async fn record_provision(
        &self,
        audit: &AuditSink,
        provision: &Provision,
        request_id: &str,
        route: &str,
        status: u16,
    ) -> Result<(), ConsentError> {
        let event = StateEvent::ThirdPartyRecord {
            direction: provision.direction,
            subject: provision.subject.clone(),
            recipient: provision.recipient.id.to_string(),
            categories: vec![provision.category],
            purpose: provision.purpose.to_string(),
            request_id: request_id.to_owned(),
            route: route.to_owned(),
            status,
        };
        audit.record_state(event.clone()).await?;
        self.apply(&event, &crate::audit::record::now_rfc3339());
        Ok(())
    }

    /// Apply a consent or third-party event recorded at `time`.
    pub fn apply(&self, event: &StateEvent, time: &str) {
        self.write().apply(event.clone(), time.to_owned());
    }

    /// Replay consent and third-party events from the state log
    /// (`audit::segment::read_replayed_state`), taking them over: start-up's last replay, so
    /// that a million events move into the ledger instead of being copied (one lock, maps
    /// sized once).
    pub fn replay(&self, records: Vec<crate::audit::segment::StateRecord>) -> usize {
        let ours = |e: &StateEvent| {
            matches!(
                e,
                StateEvent::ConsentGranted { .. }
                    | StateEvent::ConsentWithdrawn { .. }
                    | StateEvent::ThirdPartyRecord { .. }
            )
        };
        let grants = records
            .iter()
            .filter(|r| matches!(r.event, StateEvent::ConsentGranted { .. }))
            .count();
        let mut ledger = self.write();
        ledger.by_subject.reserve(grants);
        ledger.live.reserve(grants);
        let mut applied = 0;
        for record in records.into_iter().filter(|r| ours(&r.event)) {
            ledger.apply(record.event, record.time);
            applied += 1;
        }
        applied
    }
}

impl Ledger {
    fn apply(&mut self, event: StateEvent, time: String) {
        match event {
            StateEvent::ConsentGranted {
                consent,
                subject,
                kind,
                categories,
                purpose,
                recipient,
                country,
            } => {
                let given = Consent {
                    id: consent,
                    kind,
                    categories,
                    purpose,
                    recipient,
                    country,
                    granted_at: time,
                    withdrawn_at: None,
                };
                let live = match self.live.get_mut(&subject) {
                    Some(live) => live,
                    None => self.live.entry(subject.clone()).or_default(),
                };
                for terms in given.terms() {
                    match live.iter_mut().find(|l| l.terms == terms) {
                        Some(l) => l.count += 1,
                        None => live.push(Live { terms, count: 1 }),
                    }
                }
                self.by_subject.entry(subject).or_default().push(given);
            }
            StateEvent::ConsentWithdrawn { consent, subject } => {
                let Some(entry) = self
                    .by_subject
                    .get_mut(&subject)
                    .and_then(|list| list.iter_mut().find(|c| c.id == consent))
                    .filter(|c| c.withdrawn_at.is_none())
                else {
                    return;
                };
                entry.withdrawn_at = Some(time);
                let withdrawn: Vec<Terms> = entry.terms().collect();
                if let Some(live) = self.live.get_mut(&subject) {
                    for terms in withdrawn {
                        if let Some(l) = live.iter_mut().find(|l| l.terms == terms) {
                            l.count = l.count.saturating_sub(1);
                        }
                    }
                    live.retain(|l| l.count > 0);
                    if live.is_empty() {
                        self.live.remove(&subject);
                    }
                }
            }
            StateEvent::ThirdPartyRecord {
                direction,
                subject,
                recipient,
                categories,
                purpose,
                request_id,
                route,
                status,
            } => {
                self.provisions
                    .entry(subject)
                    .or_default()
                    .push(ProvisionRecord {
                        time,
                        direction,
                        recipient,
                        categories,
                        purpose,
                        request_id,
                        route,
                        status,
                    });
            }
            _ => {}
        }
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
            recipient: None,
            country: None,
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
