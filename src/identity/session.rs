//! Sessions (R-AUTH-3): idle and absolute limits, logout, and revocation by session, by
//! subject or by token. Revocations are state events, written durably to the audit store's
//! state log before they take effect, and replayed from it at start, so they survive a
//! restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use super::Principal;
use crate::audit::{AuditError, AuditSink, StateEvent};
use crate::decision::{Reason, Refusal};

/// Idle and absolute session limits (from the policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// No request for this long locks the session.
    pub idle_secs: u64,
    /// A session ends this long after the sign-in (`auth_time`, else `iat`).
    pub absolute_secs: u64,
}

#[derive(Default)]
struct State {
    /// Session key → last request (seconds since the epoch).
    last_seen: HashMap<String, i64>,
    /// Sessions ended by logout, revocation or idleness.
    ended: HashSet<String>,
    /// Subject → time of revocation: tokens from sign-ins before it are refused.
    subjects: HashMap<String, i64>,
    /// Revoked token ids.
    tokens: HashSet<String>,
}

/// The gateway's view of sessions. Shared by every request and by the revocation calls.
#[derive(Default)]
pub struct SessionRegistry {
    state: Mutex<State>,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionRegistry")
    }
}

fn refusal(reason: Reason, detail: &str) -> Refusal {
    let mut r = Refusal::new(reason, detail);
    r.challenge = Some(format!(
        "Bearer realm=\"phr-gateway\", error=\"invalid_token\", error_description=\"{detail}\""
    ));
    r
}

impl SessionRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent maps (every update is
        // one insert), so the state stays usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Check a verified principal's session at `now` and note the activity.
    pub fn check(&self, p: &Principal, limits: SessionLimits, now: i64) -> Result<(), Refusal> {
        // A token that says neither when the user signed in nor when it was issued is held to
        // its `exp` for the lifetime, and counts as signed in before any subject revocation.
        let signed_in = p.auth_time.or(p.issued_at);
        if signed_in.is_some_and(|t| now.saturating_sub(t) > limits.absolute_secs as i64) {
            return Err(refusal(
                Reason::IdentitySessionExpired,
                "the session has reached its absolute lifetime; sign in again",
            ));
        }
        let mut state = self.lock();
        if p.token_id
            .as_ref()
            .is_some_and(|t| state.tokens.contains(t))
        {
            return Err(refusal(
                Reason::IdentitySessionRevoked,
                "this token was revoked",
            ));
        }
        if state
            .subjects
            .get(&p.subject)
            .is_some_and(|&revoked_at| signed_in.is_none_or(|t| t <= revoked_at))
        {
            return Err(refusal(
                Reason::IdentitySessionRevoked,
                "every session of this user was revoked; sign in again",
            ));
        }
        // A token with neither `sid` nor `jti` cannot be held to a session; revocation by
        // subject still applies to it.
        let Some(key) = p.session_key.as_deref() else {
            return Ok(());
        };
        if state.ended.contains(key) {
            return Err(refusal(
                Reason::IdentitySessionRevoked,
                "this session has ended (logout, revocation or idle lock); sign in again",
            ));
        }
        let idle = match state.last_seen.get_mut(key) {
            Some(last) if now.saturating_sub(*last) > limits.idle_secs as i64 => true,
            Some(last) => {
                *last = now;
                false
            }
            None => {
                state.last_seen.insert(key.to_owned(), now);
                false
            }
        };
        if idle {
            state.last_seen.remove(key);
            state.ended.insert(key.to_owned());
            return Err(refusal(
                Reason::IdentitySessionIdle,
                "the session was idle too long and is locked; sign in again",
            ));
        }
        Ok(())
    }

    /// Apply a revocation event (from the state log at start, or just written).
    pub fn apply(&self, event: &StateEvent) {
        let mut state = self.lock();
        match event {
            StateEvent::SessionEnded { session, .. } => {
                state.last_seen.remove(session);
                state.ended.insert(session.clone());
            }
            StateEvent::SubjectRevoked { subject, at, .. } => {
                let at = *at;
                state
                    .subjects
                    .entry(subject.clone())
                    .and_modify(|t| *t = (*t).max(at))
                    .or_insert(at);
            }
            StateEvent::TokenRevoked { token_id, .. } => {
                state.tokens.insert(token_id.clone());
            }
            _ => {}
        }
    }

    /// Record (durably) and apply a revocation. Nothing changes if it cannot be recorded.
    pub async fn revoke(&self, audit: &AuditSink, event: StateEvent) -> Result<u64, AuditError> {
        let seq = audit.record_state(event.clone()).await?;
        self.apply(&event);
        Ok(seq)
    }

    /// The event that ends a principal's own session (logout).
    pub fn logout_event(p: &Principal) -> Option<StateEvent> {
        p.session_key
            .clone()
            .map(|session| StateEvent::SessionEnded {
                session,
                reason: "logout".into(),
            })
    }

    /// Sessions seen and not ended.
    pub fn active(&self) -> usize {
        self.lock().last_seen.len()
    }

    /// Replay revocations from the state log (`audit::segment::read_replayed_state`).
    pub fn replay<'a>(
        &self,
        records: impl IntoIterator<Item = &'a crate::audit::segment::StateRecord>,
    ) -> usize {
        crate::audit::segment::replay_matching(
            records,
            |e| {
                matches!(
                    e,
                    StateEvent::SessionEnded { .. }
                        | StateEvent::SubjectRevoked { .. }
                        | StateEvent::TokenRevoked { .. }
                )
            },
            |r| self.apply(&r.event),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(sub: &str, sid: &str, jti: &str, auth_time: i64) -> Principal {
        Principal {
            issuer: "idp".into(),
            subject: sub.into(),
            client_id: None,
            scopes: Vec::new(),
            roles: Vec::new(),
            session: Some(sid.into()),
            token_id: Some(jti.into()),
            auth_time: Some(auth_time),
            issued_at: Some(auth_time),
            amr: Vec::new(),
            acr: None,
            multi_factor: true,
            expires_at: auth_time + 3600,
            session_key: Some(format!("idp|{sid}")),
            rate_key: std::sync::Arc::from(format!("idp|{sub}")),
            patient: None,
            granted_scopes: Vec::new(),
            purposes: None,
            upstream_headers: Vec::new(),
        }
    }

    const LIMITS: SessionLimits = SessionLimits {
        idle_secs: 600,
        absolute_secs: 3600,
    };

    #[test]
    fn revocations_by_subject_token_and_lifetime_r_auth_3() {
        let registry = SessionRegistry::default();
        let p = principal("alice", "s1", "t1", 1000);
        assert!(registry.check(&p, LIMITS, 1100).is_ok());
        assert_eq!(
            registry.check(&p, LIMITS, 1000 + 3601).unwrap_err().reason,
            Reason::IdentitySessionExpired
        );
        registry.apply(&StateEvent::TokenRevoked {
            token_id: "t1".into(),
            by: "admin".into(),
        });
        assert_eq!(
            registry.check(&p, LIMITS, 1200).unwrap_err().reason,
            Reason::IdentitySessionRevoked
        );

        let q = principal("bob", "s2", "t2", 1000);
        registry.apply(&StateEvent::SubjectRevoked {
            subject: "bob".into(),
            at: 1500,
            by: "admin".into(),
        });
        assert_eq!(
            registry.check(&q, LIMITS, 1600).unwrap_err().reason,
            Reason::IdentitySessionRevoked
        );
        let later = principal("bob", "s3", "t3", 1501);
        assert!(
            registry.check(&later, LIMITS, 1600).is_ok(),
            "a sign-in after the revocation"
        );
        let other = principal("carol", "s4", "t4", 1000);
        assert!(
            registry.check(&other, LIMITS, 1600).is_ok(),
            "other subjects are untouched"
        );
    }
}
