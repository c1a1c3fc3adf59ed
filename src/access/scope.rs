//! OAuth scopes as routes require them and tokens grant them: plain strings, and SMART on FHIR
//! scopes (`patient/Observation.rs`, `user/*.cruds`, v1 `patient/*.read`).
//!
//! A SMART v2 suffix is a subset of `c r u d s` written in that order; anything else
//! (`.dus`, `.rr`, `.x`) is not a SMART scope at all, so `.read` can never be taken for the
//! letters `r`, `e`, `a`, `d`: v1's `.read`, `.write` and `.*` are matched as words first.
//! A granted scope with a query part (`patient/Observation.rs?category=laboratory`, SMART v2
//! granular scopes) narrows what it grants to what the gateway cannot check per request, so it
//! grants nothing here rather than everything.

/// The interaction letters of SMART v2, as bits.
pub mod letters {
    /// `c`: create.
    pub const CREATE: u8 = 1;
    /// `r`: read.
    pub const READ: u8 = 2;
    /// `u`: update.
    pub const UPDATE: u8 = 4;
    /// `d`: delete.
    pub const DELETE: u8 = 8;
    /// `s`: search.
    pub const SEARCH: u8 = 16;
    /// All five.
    pub const ALL: u8 = 31;
}

const ORDER: [(char, u8); 5] = [
    ('c', letters::CREATE),
    ('r', letters::READ),
    ('u', letters::UPDATE),
    ('d', letters::DELETE),
    ('s', letters::SEARCH),
];

/// Whose data a SMART scope reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// The patient in context (the token's `patient` claim).
    Patient,
    /// What the user may reach.
    User,
    /// A backend service.
    System,
}

/// A SMART on FHIR scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmartScope {
    /// `patient`, `user` or `system`.
    pub context: Context,
    /// A FHIR resource type, or `None` for `*`.
    pub resource: Option<String>,
    /// Interaction letters granted or required.
    pub letters: u8,
}

/// A scope: SMART, or any other string compared as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A SMART on FHIR scope.
    Smart(SmartScope),
    /// Anything else (`openid`, `phr.read`, ...).
    Plain(String),
}

/// Why a string that looks like a SMART scope is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// `.dus`, `.rr`, `.x`: letters out of `c r u d s` order, repeated or unknown.
    #[error("`{0}`: the suffix must be letters of `cruds` in that order (or read, write, *)")]
    Suffix(String),
    /// `patient/.rs`, `patient/Obs ervation.r`.
    #[error("`{0}`: the resource type must be `*` or a FHIR type name")]
    Resource(String),
    /// A query part (granular scope), which a route cannot require.
    #[error("`{0}`: scopes with a query part cannot be required by a route")]
    Query(String),
}

impl Scope {
    /// Parse a scope. Strings that start with `patient/`, `user/` or `system/` must be valid
    /// SMART scopes; everything else is plain.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let Some((context, rest)) = text.split_once('/') else {
            return Ok(Scope::Plain(text.to_owned()));
        };
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return Ok(Scope::Plain(text.to_owned())),
        };
        if rest.contains('?') {
            return Err(ScopeError::Query(text.to_owned()));
        }
        let Some((resource, suffix)) = rest.rsplit_once('.') else {
            return Err(ScopeError::Suffix(text.to_owned()));
        };
        let resource = match resource {
            "*" => None,
            name if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Some(name.to_owned())
            }
            _ => return Err(ScopeError::Resource(text.to_owned())),
        };
        let letters = match suffix {
            "read" => letters::READ | letters::SEARCH,
            "write" => letters::CREATE | letters::UPDATE | letters::DELETE,
            "*" => letters::ALL,
            _ => parse_letters(suffix).ok_or_else(|| ScopeError::Suffix(text.to_owned()))?,
        };
        Ok(Scope::Smart(SmartScope {
            context,
            resource,
            letters,
        }))
    }

    /// Whether this granted scope covers the `required` one.
    pub fn covers(&self, required: &Scope) -> bool {
        match (self, required) {
            (Scope::Plain(granted), Scope::Plain(wanted)) => granted == wanted,
            (Scope::Smart(granted), Scope::Smart(wanted)) => {
                granted.context == wanted.context
                    && (granted.resource.is_none() || granted.resource == wanted.resource)
                    && granted.letters & wanted.letters == wanted.letters
            }
            _ => false,
        }
    }
}

/// `cruds` letters in order, each at most once, at least one.
fn parse_letters(suffix: &str) -> Option<u8> {
    let mut bits = 0u8;
    let mut next = 0usize;
    for c in suffix.chars() {
        let at = ORDER[next..].iter().position(|(l, _)| *l == c)? + next;
        bits |= ORDER[at].1;
        next = at + 1;
    }
    (bits != 0).then_some(bits)
}

/// Parse the scopes a token grants: malformed SMART scopes and granular ones grant nothing.
pub fn granted(scopes: &[String]) -> Vec<Scope> {
    scopes.iter().filter_map(|s| Scope::parse(s).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smart(context: Context, resource: Option<&str>, letters: u8) -> Result<Scope, ScopeError> {
        Ok(Scope::Smart(SmartScope {
            context,
            resource: resource.map(str::to_owned),
            letters,
        }))
    }

    #[test]
    fn smart_scopes_parse_by_the_v2_rules() {
        use letters::*;
        let cases: &[(&str, Result<Scope, ScopeError>)] = &[
            (
                "patient/Observation.rs",
                smart(Context::Patient, Some("Observation"), READ | SEARCH),
            ),
            ("user/*.cruds", smart(Context::User, None, ALL)),
            (
                "system/Patient.r",
                smart(Context::System, Some("Patient"), READ),
            ),
            (
                "patient/Observation.rd",
                smart(Context::Patient, Some("Observation"), READ | DELETE),
            ),
            // v1 words, matched before letters: `.read` is never r+e+a+d.
            (
                "patient/*.read",
                smart(Context::Patient, None, READ | SEARCH),
            ),
            (
                "user/Observation.write",
                smart(Context::User, Some("Observation"), CREATE | UPDATE | DELETE),
            ),
            ("patient/*.*", smart(Context::Patient, None, ALL)),
            // Refused: out of order, repeated, unknown letters, empty, bad types, query parts.
            (
                "patient/Observation.dus",
                Err(ScopeError::Suffix("patient/Observation.dus".into())),
            ),
            (
                "patient/Observation.rr",
                Err(ScopeError::Suffix("patient/Observation.rr".into())),
            ),
            (
                "patient/Observation.rx",
                Err(ScopeError::Suffix("patient/Observation.rx".into())),
            ),
            (
                "patient/Observation.",
                Err(ScopeError::Suffix("patient/Observation.".into())),
            ),
            (
                "patient/Observation",
                Err(ScopeError::Suffix("patient/Observation".into())),
            ),
            (
                "patient/.rs",
                Err(ScopeError::Resource("patient/.rs".into())),
            ),
            (
                "patient/Obs-ervation.rs",
                Err(ScopeError::Resource("patient/Obs-ervation.rs".into())),
            ),
            (
                "patient/Observation.rs?category=laboratory",
                Err(ScopeError::Query(
                    "patient/Observation.rs?category=laboratory".into(),
                )),
            ),
            // Plain scopes.
            ("openid", Ok(Scope::Plain("openid".into()))),
            ("launch/patient", Ok(Scope::Plain("launch/patient".into()))),
        ];
        for (text, expected) in cases {
            assert_eq!(&Scope::parse(text), expected, "{text}");
        }
    }

    #[test]
    fn covering_needs_context_type_and_every_letter() {
        let scope = |s: &str| Scope::parse(s).unwrap_or_else(|e| panic!("{e}"));
        let wanted = scope("patient/Observation.r");
        for granted in [
            "patient/Observation.rs",
            "patient/*.cruds",
            "patient/*.read",
        ] {
            assert!(scope(granted).covers(&wanted), "{granted}");
        }
        for granted in [
            "patient/Observation.s",
            "patient/Condition.rs",
            "user/Observation.rs",
            "patient/*.write",
            "openid",
        ] {
            assert!(!scope(granted).covers(&wanted), "{granted}");
        }
        assert!(scope("openid").covers(&scope("openid")));
        // A granular or malformed grant grants nothing.
        let grants = granted(&[
            "patient/Observation.rs?category=laboratory".into(),
            "patient/*.dus".into(),
        ]);
        assert!(grants.is_empty());
    }
}
