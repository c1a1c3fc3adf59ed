//! Multi-factor proof (R-AUTH-2) and step-up (RFC 9470): what the token says about how the user
//! signed in, held against what the route asks.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The three kinds of authentication factor.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// Something the user knows (a password, a PIN).
    Knowledge,
    /// Something the user has (a phone, a security key, a one-time-password device).
    Possession,
    /// Something the user is (a fingerprint, a face).
    Inherence,
}

/// The RFC 8176 `amr` values and the factor each proves; the policy may override or extend.
pub const RFC_8176_FACTORS: &[(&str, FactorKind)] = &[
    ("pwd", FactorKind::Knowledge),
    ("pin", FactorKind::Knowledge),
    ("kba", FactorKind::Knowledge),
    ("otp", FactorKind::Possession),
    ("hwk", FactorKind::Possession),
    ("swk", FactorKind::Possession),
    ("sms", FactorKind::Possession),
    ("tel", FactorKind::Possession),
    ("sc", FactorKind::Possession),
    ("fpt", FactorKind::Inherence),
    ("face", FactorKind::Inherence),
    ("iris", FactorKind::Inherence),
    ("retina", FactorKind::Inherence),
    ("vbm", FactorKind::Inherence),
];

/// How the policy reads `amr` and `acr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfaRules {
    /// `amr` value → factor kind.
    pub factors: BTreeMap<String, FactorKind>,
    /// `acr` values that by themselves mean multi-factor.
    pub mfa_acr: Vec<String>,
    /// Whether `amr: ["mfa"]` alone is believed.
    pub accept_mfa_amr: bool,
}

impl MfaRules {
    /// The RFC 8176 table, no `acr` counted as MFA, bare `mfa` not believed.
    pub fn rfc8176() -> Self {
        MfaRules {
            factors: RFC_8176_FACTORS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            mfa_acr: Vec::new(),
            accept_mfa_amr: false,
        }
    }

    /// The factor kinds a token's evidence covers.
    pub fn kinds(&self, amr: &[String]) -> BTreeSet<FactorKind> {
        amr.iter()
            .filter_map(|m| self.factors.get(m.as_str()).copied())
            .collect()
    }

    /// Whether the token shows two or more distinct factor kinds (or an `acr` / `mfa` the
    /// policy accepts as such).
    pub fn is_multi_factor(&self, amr: &[String], acr: Option<&str>) -> bool {
        self.kinds(amr).len() >= 2
            || acr.is_some_and(|a| self.mfa_acr.iter().any(|m| m == a))
            || (self.accept_mfa_amr && amr.iter().any(|m| m == "mfa"))
    }
}

/// What a route asks of how recently and how strongly the user signed in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepUp {
    /// `auth_time` no older than this many seconds.
    pub max_age_secs: Option<u64>,
    /// One of these `acr` values.
    pub acr_values: Vec<String>,
}

impl StepUp {
    /// Whether the route asks for anything.
    pub fn is_required(&self) -> bool {
        self.max_age_secs.is_some() || !self.acr_values.is_empty()
    }

    /// Whether a token with this `auth_time` and `acr` satisfies it at `now`.
    pub fn satisfied(&self, auth_time: Option<i64>, acr: Option<&str>, now: i64) -> bool {
        let fresh = self
            .max_age_secs
            .is_none_or(|max| auth_time.is_some_and(|t| now.saturating_sub(t) <= max as i64));
        let strong = self.acr_values.is_empty()
            || acr.is_some_and(|a| self.acr_values.iter().any(|v| v == a));
        fresh && strong
    }

    /// The RFC 9470 challenge that tells the client what to ask the IdP for.
    pub fn challenge(&self) -> String {
        let mut c = String::from(
            "Bearer realm=\"phr-gateway\", error=\"insufficient_user_authentication\", error_description=\"a more recent or stronger sign-in is required\"",
        );
        if !self.acr_values.is_empty() {
            c.push_str(&format!(", acr_values=\"{}\"", self.acr_values.join(" ")));
        }
        if let Some(max) = self.max_age_secs {
            c.push_str(&format!(", max_age={max}"));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> MfaRules {
        MfaRules {
            factors: RFC_8176_FACTORS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            mfa_acr: vec!["urn:example:loa:mfa".into()],
            accept_mfa_amr: false,
        }
    }

    fn amr(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn two_distinct_kinds_are_multi_factor_r_auth_2() {
        let r = rules();
        assert!(r.is_multi_factor(&amr(&["pwd", "otp"]), None));
        assert!(r.is_multi_factor(&amr(&["fpt", "hwk"]), None));
        assert!(!r.is_multi_factor(&amr(&["pwd"]), None));
        // Two of one kind are still one factor.
        assert!(!r.is_multi_factor(&amr(&["pwd", "pin"]), None));
        assert!(!r.is_multi_factor(&amr(&["pwd", "unknown"]), None));
        assert!(
            !r.is_multi_factor(&amr(&["mfa"]), None),
            "mfa alone only when the policy says so"
        );
        assert!(r.is_multi_factor(&amr(&["pwd"]), Some("urn:example:loa:mfa")));
        let lenient = MfaRules {
            accept_mfa_amr: true,
            ..r
        };
        assert!(lenient.is_multi_factor(&amr(&["mfa"]), None));
    }

    #[test]
    fn step_up_checks_age_and_acr_and_says_what_to_ask_for() {
        let s = StepUp {
            max_age_secs: Some(300),
            acr_values: vec!["gold".into()],
        };
        assert!(s.satisfied(Some(1000), Some("gold"), 1200));
        assert!(!s.satisfied(Some(1000), Some("gold"), 1301));
        assert!(!s.satisfied(None, Some("gold"), 1000));
        assert!(!s.satisfied(Some(1000), Some("silver"), 1100));
        let c = s.challenge();
        assert!(c.contains("error=\"insufficient_user_authentication\""));
        assert!(c.contains("acr_values=\"gold\"") && c.contains("max_age=300"));
    }
}
