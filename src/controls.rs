//! Operator controls that change at run time (R-NET-3, R-AZ-7): the gateway's mode (normal,
//! emergency stop, read-only) and subject stops. Each change is a state event, written durably
//! before it takes effect and replayed at start, so a stop survives a restart.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{PoisonError, RwLock};

use http::Method;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditError, AuditSink, StateEvent};
use crate::decision::{Reason, Refusal};

/// What the public listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Everything the policy allows.
    Normal,
    /// Emergency stop: every user route answers 503 with `Retry-After`.
    Stopped,
    /// Degraded: only GET and HEAD pass; writes answer 503.
    ReadOnly,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 3] = [Mode::Normal, Mode::Stopped, Mode::ReadOnly];

    /// Its name in events, metrics and the admin API.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Stopped => "stopped",
            Mode::ReadOnly => "read-only",
        }
    }

    const fn from_u8(n: u8) -> Mode {
        match n {
            1 => Mode::Stopped,
            2 => Mode::ReadOnly,
            _ => Mode::Normal,
        }
    }

    const fn as_u8(self) -> u8 {
        match self {
            Mode::Normal => 0,
            Mode::Stopped => 1,
            Mode::ReadOnly => 2,
        }
    }
}

/// The default `Retry-After` of a stop or read-only answer, in seconds.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 300;

/// The gateway's run-time controls, shared by every request and the admin listener.
#[derive(Debug)]
pub struct Controls {
    mode: AtomicU8,
    retry_after: AtomicU64,
    /// Whether any subject is stopped: the request path skips the lock when none is.
    any_stop: AtomicBool,
    stopped: RwLock<HashSet<String>>,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            mode: AtomicU8::new(Mode::Normal.as_u8()),
            retry_after: AtomicU64::new(DEFAULT_RETRY_AFTER_SECS),
            any_stop: AtomicBool::new(false),
            stopped: RwLock::new(HashSet::new()),
        }
    }
}

impl Controls {
    /// The mode in force.
    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::Acquire))
    }

    /// The `Retry-After` sent while stopped or read-only.
    pub fn retry_after(&self) -> u64 {
        self.retry_after.load(Ordering::Relaxed)
    }

    /// The mode check for a user request. `writes_state_only` is for the gateway's own
    /// endpoints that change nothing upstream (logout), which read-only mode lets through.
    pub fn check_mode(&self, method: &Method, writes_state_only: bool) -> Result<(), Refusal> {
        let (reason, detail) = match self.mode() {
            Mode::Normal => return Ok(()),
            Mode::Stopped => (
                Reason::GatewayStopped,
                "the service is stopped by its operator; try again later",
            ),
            Mode::ReadOnly
                if method == Method::GET || method == Method::HEAD || writes_state_only =>
            {
                return Ok(())
            }
            Mode::ReadOnly => (
                Reason::GatewayReadOnly,
                "the service accepts only reads for now; try the change again later",
            ),
        };
        let mut refusal = Refusal::new(reason, detail);
        refusal.retry_after = Some(self.retry_after());
        Err(refusal)
    }

    /// Refuse a request whose subject is stopped.
    pub fn check_subject(&self, subject: &str) -> Result<(), Refusal> {
        if !self.any_stop.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.read().contains(subject) {
            return Err(Refusal::new(
                Reason::AccessSubjectStopped,
                "the use of this person's data is stopped at their request or by the operator",
            ));
        }
        Ok(())
    }

    /// Subjects stopped now.
    pub fn stopped_subjects(&self) -> usize {
        self.read().len()
    }

    /// Record (durably) and apply a control event. Nothing changes if it cannot be recorded.
    pub async fn change(&self, audit: &AuditSink, event: StateEvent) -> Result<u64, AuditError> {
        let seq = audit.record_state(event.clone()).await?;
        self.apply(&event);
        Ok(seq)
    }

    /// Apply a control event (just written, or replayed).
    pub fn apply(&self, event: &StateEvent) {
        match event {
            StateEvent::ModeChanged {
                mode,
                retry_after_secs,
                ..
            } => {
                self.retry_after.store(*retry_after_secs, Ordering::Relaxed);
                self.mode.store(mode.as_u8(), Ordering::Release);
                if let Some(m) = crate::metrics::metrics() {
                    m.set_mode(*mode);
                }
            }
            StateEvent::SubjectStopped { subject, .. } => {
                let mut stopped = self.write();
                stopped.insert(subject.clone());
                self.any_stop.store(true, Ordering::Release);
            }
            StateEvent::SubjectResumed { subject, .. } => {
                let mut stopped = self.write();
                stopped.remove(subject);
                self.any_stop.store(!stopped.is_empty(), Ordering::Release);
            }
            _ => {}
        }
    }

    /// Replay control events from the state log (`audit::segment::read_replayed_state`);
    /// returns how many applied.
    pub fn replay<'a>(
        &self,
        records: impl IntoIterator<Item = &'a crate::audit::segment::StateRecord>,
    ) -> usize {
        crate::audit::segment::replay_matching(
            records,
            |e| {
                matches!(
                    e,
                    StateEvent::ModeChanged { .. }
                        | StateEvent::SubjectStopped { .. }
                        | StateEvent::SubjectResumed { .. }
                )
            },
            |r| self.apply(&r.event),
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        // Every update is one insert or remove: a poisoned set is still consistent.
        self.stopped.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<String>> {
        self.stopped.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_event(mode: Mode) -> StateEvent {
        StateEvent::ModeChanged {
            mode,
            retry_after_secs: 120,
            by: "alice".into(),
        }
    }

    #[test]
    fn stop_refuses_everything_and_read_only_refuses_writes() {
        let controls = Controls::default();
        assert!(controls.check_mode(&Method::POST, false).is_ok());
        controls.apply(&mode_event(Mode::Stopped));
        let r = controls.check_mode(&Method::GET, false).err();
        assert_eq!(r.as_ref().map(|r| r.reason), Some(Reason::GatewayStopped));
        assert_eq!(r.and_then(|r| r.retry_after), Some(120));
        controls.apply(&mode_event(Mode::ReadOnly));
        assert!(controls.check_mode(&Method::GET, false).is_ok());
        assert!(controls.check_mode(&Method::HEAD, false).is_ok());
        assert!(controls.check_mode(&Method::POST, true).is_ok());
        for write in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let r = controls.check_mode(&write, false).err().map(|r| r.reason);
            assert_eq!(r, Some(Reason::GatewayReadOnly), "{write}");
        }
        controls.apply(&mode_event(Mode::Normal));
        assert!(controls.check_mode(&Method::DELETE, false).is_ok());
    }

    #[test]
    fn subject_stops_apply_and_replay() {
        let controls = Controls::default();
        assert!(controls.check_subject("patient-1").is_ok());
        let stop = StateEvent::SubjectStopped {
            subject: "patient-1".into(),
            by: "alice".into(),
        };
        let resume = StateEvent::SubjectResumed {
            subject: "patient-1".into(),
            by: "alice".into(),
        };
        controls.apply(&stop);
        let r = controls.check_subject("patient-1").err().map(|r| r.reason);
        assert_eq!(r, Some(Reason::AccessSubjectStopped));
        assert!(controls.check_subject("patient-2").is_ok());
        controls.apply(&resume);
        assert!(controls.check_subject("patient-1").is_ok());

        // Replayed as start-up reads the state log.
        let log: Vec<crate::audit::segment::StateRecord> = [stop, mode_event(Mode::ReadOnly)]
            .into_iter()
            .map(|event| crate::audit::segment::StateRecord {
                time: "t".into(),
                event,
            })
            .collect();
        let fresh = Controls::default();
        assert_eq!(fresh.replay(&log), 2);
        assert_eq!(fresh.mode(), Mode::ReadOnly);
        assert!(fresh.check_subject("patient-1").is_err());
    }
}
