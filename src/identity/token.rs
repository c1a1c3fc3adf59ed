//! Bearer token verification (R-AUTH-1): a compact JWS, checked strictly before any claim is
//! believed. jsonwebtoken parses the header and verifies the signature; the rules about which
//! tokens are acceptable at all are here.

use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::jwks::IssuerKeys;
use super::keys::{KeySet, ALLOWED_ALGORITHMS};
use crate::decision::Reason;

/// Why a token was refused. Each maps to one reason code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed compact JWS, or a header the gateway will not accept.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Larger than the policy's limit.
    #[error("token larger than {0} bytes")]
    TooLarge(usize),
    /// `alg` is not one the issuer (or the gateway) accepts.
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    /// The header lists a critical extension the gateway does not implement.
    #[error("unknown critical header extension")]
    UnknownCritical,
    /// The header names a key source (`jku`, `x5u`, `jwk`, `x5c`); the gateway never follows one.
    #[error("the header names a key source ({0}); keys come only from the issuer's JWKS")]
    KeySourceInHeader(&'static str),
    /// `typ` is not what the issuer's tokens carry.
    #[error("token type is not {0}")]
    WrongType(String),
    /// No declared issuer has this `iss`.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// No key of the issuer has this `kid` (for this algorithm).
    #[error("no key of the issuer matches the token's key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// No audience of the token is one of the issuer's.
    #[error("token is not for this audience")]
    WrongAudience,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` lies in the future.
    #[error("token not valid yet")]
    NotYetValid,
}

impl TokenError {
    /// The reason code a refusal carries.
    pub fn reason(&self) -> Reason {
        match self {
            TokenError::BadSignature | TokenError::UnknownKey => Reason::IdentityInvalidSignature,
            TokenError::Expired => Reason::IdentityExpired,
            TokenError::NotYetValid => Reason::IdentityNotYetValid,
            TokenError::UnknownIssuer | TokenError::WrongAudience => Reason::IdentityWrongAudience,
            _ => Reason::IdentityInvalidToken,
        }
    }
}

/// One issuer the policy trusts.
#[derive(Debug)]
pub struct Issuer {
    /// The policy's name for it.
    pub id: String,
    /// Its `iss`.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Accepted `alg` values.
    pub algorithms: Vec<Algorithm>,
    /// Required `typ` (compared without case and `application/`), e.g. `at+jwt`.
    pub token_type: Option<String>,
    /// Its keys.
    pub keys: IssuerKeys,
}

/// Limits that apply to every token.
#[derive(Clone, Copy, Debug)]
pub struct TokenRules {
    /// Largest token accepted, in bytes.
    pub max_bytes: usize,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: i64,
}

/// `aud`: one string or a list.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims the gateway reads. Unknown claims are ignored; a claim given twice is refused.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    aud: Audience,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Not before.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Issued at.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Token id.
    #[serde(default)]
    pub jti: Option<String>,
    /// Authorised party (the client).
    #[serde(default)]
    pub azp: Option<String>,
    /// Client id (RFC 9068).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// Roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Session id.
    #[serde(default)]
    pub sid: Option<String>,
    /// When the user authenticated.
    #[serde(default)]
    pub auth_time: Option<i64>,
    /// Authentication methods (RFC 8176).
    #[serde(default)]
    pub amr: Option<Vec<String>>,
    /// Authentication context class.
    #[serde(default)]
    pub acr: Option<String>,
    /// SMART on FHIR launch context: the patient the token is for.
    #[serde(default)]
    pub patient: Option<String>,
    /// SMART on FHIR / OpenID: the user's FHIR resource, e.g. `Patient/123`.
    #[serde(default, rename = "fhirUser")]
    pub fhir_user: Option<String>,
    /// Every other claim (the policy may name one that lists the token's purposes).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    fn audiences(&self) -> impl Iterator<Item = &str> {
        let list: Vec<&str> = match &self.aud {
            Audience::One(a) => vec![a.as_str()],
            Audience::Many(list) => list.iter().map(String::as_str).collect(),
        };
        list.into_iter()
    }
}

/// A token that verified, with the issuer that vouches for it.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Index of the issuer in the policy.
    pub issuer: usize,
    /// Its claims.
    pub claims: Claims,
}

/// The protected header fields the gateway looks at.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
    #[serde(default)]
    jku: Option<serde_json::Value>,
    #[serde(default)]
    x5u: Option<serde_json::Value>,
    #[serde(default)]
    jwk: Option<serde_json::Value>,
    #[serde(default)]
    x5c: Option<serde_json::Value>,
}

fn is_base64url(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Verify a compact JWS access token against the issuers, at `now` (seconds since the epoch).
pub fn verify(
    token: &str,
    issuers: &[Issuer],
    rules: TokenRules,
    now: i64,
) -> Result<Verified, TokenError> {
    let (header, alg, [_, payload_b64, signature_b64]) = parse_compact(token, rules.max_bytes)?;
    let payload = B64URL
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    reject_duplicate_keys(&payload).map_err(|_| TokenError::Malformed("a claim is given twice"))?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| {
        TokenError::Malformed("payload is not a JWT claim set with iss, sub, aud and exp")
    })?;

    let (index, issuer) = issuers
        .iter()
        .enumerate()
        .find(|(_, i)| i.issuer == claims.iss)
        .ok_or(TokenError::UnknownIssuer)?;
    if !issuer.algorithms.contains(&alg) {
        return Err(TokenError::Algorithm(header.alg));
    }
    if let Some(expected) = &issuer.token_type {
        let typ = header
            .typ
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if typ != expected.to_ascii_lowercase() {
            return Err(TokenError::WrongType(expected.clone()));
        }
    }
    let checked = check_signature(
        &issuer.keys.current(),
        header.kid.as_deref(),
        alg,
        token,
        signature_b64,
    );
    if checked == Err(TokenError::UnknownKey) {
        // Perhaps the issuer rotated: ask for a refetch (rate-limited by the refresher).
        issuer.keys.unknown_kid();
    }
    checked?;
    if claims.sub.is_empty() {
        return Err(TokenError::Malformed("sub is empty"));
    }

    if !claims
        .audiences()
        .any(|a| issuer.audiences.iter().any(|ours| ours == a))
    {
        return Err(TokenError::WrongAudience);
    }
    let leeway = rules.leeway_secs;
    if now > claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        || claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(leeway))
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(Verified {
        issuer: index,
        claims,
    })
}

/// Split a compact JWS and check its protected header; returns the header, its algorithm and
/// the three parts.
fn parse_compact(
    token: &str,
    max_bytes: usize,
) -> Result<(Header, Algorithm, [&str; 3]), TokenError> {
    if token.len() > max_bytes {
        return Err(TokenError::TooLarge(max_bytes));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    // An empty payload is a valid JWS (never a valid claim set, which is checked later).
    if !is_base64url(header_b64)
        || !is_base64url(signature_b64)
        || !(payload_b64.is_empty() || is_base64url(payload_b64))
    {
        return Err(TokenError::Malformed("a part is empty or not base64url"));
    }
    let header_bytes = B64URL
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed("header is not base64url"))?;
    reject_duplicate_keys(&header_bytes)
        .map_err(|_| TokenError::Malformed("header repeats a name"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| TokenError::Malformed("header is not a JOSE header"))?;
    if header.crit.is_some() {
        return Err(TokenError::UnknownCritical);
    }
    for (present, name) in [
        (header.jku.is_some(), "jku"),
        (header.x5u.is_some(), "x5u"),
        (header.jwk.is_some(), "jwk"),
        (header.x5c.is_some(), "x5c"),
    ] {
        if present {
            return Err(TokenError::KeySourceInHeader(name));
        }
    }
    // Exact, case-sensitive names: `none`, `None`, `HS256` and friends are not on the list.
    let alg = ALLOWED_ALGORITHMS
        .iter()
        .find(|(name, _)| *name == header.alg)
        .map(|(_, a)| *a)
        .ok_or_else(|| TokenError::Algorithm(header.alg.clone()))?;
    Ok((header, alg, [header_b64, payload_b64, signature_b64]))
}

/// The signature layer alone: is `token` a compact JWS signed by one of `keys`, with an
/// acceptable header? (What the Wycheproof JWS vectors test; [`verify`] adds the claims.)
pub fn verify_signature_only(
    token: &str,
    keys: &KeySet,
    max_bytes: usize,
) -> Result<(), TokenError> {
    let (header, alg, [_, _, signature_b64]) = parse_compact(token, max_bytes)?;
    check_signature(keys, header.kid.as_deref(), alg, token, signature_b64)
}

/// Verify the signature of `token` (`header.payload.signature`) with the key `kid` names.
pub fn check_signature(
    keys: &KeySet,
    kid: Option<&str>,
    alg: Algorithm,
    token: &str,
    signature_b64: &str,
) -> Result<(), TokenError> {
    let candidates = keys.candidates(kid, alg);
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey);
    }
    let message = &token.as_bytes()[..token.len() - signature_b64.len() - 1];
    let verified = candidates.iter().any(|key| {
        jsonwebtoken::crypto::verify(signature_b64, message, &key.key, alg).unwrap_or(false)
    });
    if verified {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

/// Refuse a JSON object that names a member twice (RFC 7515 §5.2 says to reject or take the
/// last; two readers taking different ones is how confusion attacks start).
fn reject_duplicate_keys(json: &[u8]) -> Result<(), serde_json::Error> {
    struct UniqueKeys;
    impl<'de> Visitor<'de> for UniqueKeys {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key) {
                    return Err(de::Error::custom("duplicate member"));
                }
                map.next_value::<de::IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    (&mut de).deserialize_map(UniqueKeys)?;
    de.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_found() {
        assert!(reject_duplicate_keys(br#"{"a":1,"b":2}"#).is_ok());
        assert!(reject_duplicate_keys(br#"{"sub":"a","sub":"b"}"#).is_err());
        assert!(reject_duplicate_keys(br#"[1]"#).is_err());
    }
}
