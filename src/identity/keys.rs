//! An issuer's signing keys, from a JWKS document (RFC 7517), admitted only if fit to verify
//! access tokens: asymmetric, marked for signatures, of a sound size and shape.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// The algorithms the gateway ever verifies: asymmetric only (never `none`, never HMAC, so a
/// public key can never be used as an HMAC secret).
pub const ALLOWED_ALGORITHMS: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("PS256", Algorithm::PS256),
    ("ES256", Algorithm::ES256),
    ("EdDSA", Algorithm::EdDSA),
];

/// An algorithm's name in `alg`.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    ALLOWED_ALGORITHMS
        .iter()
        .find(|(_, a)| *a == alg)
        .map_or("unsupported", |(n, _)| n)
}

/// Why a key set could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// The document is not a JWKS.
    #[error("not a JWK set: {0}")]
    Malformed(String),
    /// No key in it can verify any allowed algorithm.
    #[error("the JWK set has no usable signature key (asymmetric, `use` = sig, RSA ≥ 2048 bits, P-256 or Ed25519)")]
    Empty,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// The fields of a JWK the gateway reads.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    d: Option<String>,
}

/// One admitted key.
#[derive(Clone)]
pub struct VerifyKey {
    /// Its `kid`, if it has one.
    pub kid: Option<String>,
    /// The algorithms it may verify.
    pub algorithms: Vec<Algorithm>,
    /// The key itself.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The keys of one issuer.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
    by_kid: HashMap<String, usize>,
    /// Keys left out, with why (for `check` and the log).
    pub rejected: Vec<String>,
}

impl KeySet {
    /// Parse a JWKS document (or a single JWK) and admit its usable keys.
    pub fn from_json(text: &[u8]) -> Result<Self, KeySetError> {
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| KeySetError::Malformed(e.to_string()))?;
        let raw = if value.get("keys").is_some() {
            serde_json::from_value::<JwkSet>(value)
                .map_err(|e| KeySetError::Malformed(e.to_string()))?
                .keys
        } else {
            vec![value]
        };
        let mut set = KeySet::default();
        for (i, jwk) in raw.into_iter().enumerate() {
            match admit(jwk) {
                Ok(key) => {
                    if let Some(kid) = &key.kid {
                        set.by_kid.insert(kid.clone(), set.keys.len());
                    }
                    set.keys.push(key);
                }
                Err(why) => set.rejected.push(format!("key {i}: {why}")),
            }
        }
        if set.keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        Ok(set)
    }

    /// The keys that may verify `alg` for a token naming `kid`: the key with that id, or
    /// every key for the algorithm when the token names none.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&VerifyKey> {
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .map(|&i| &self.keys[i])
                .filter(|k| k.algorithms.contains(&alg))
                .into_iter()
                .collect(),
            None => self
                .keys
                .iter()
                .filter(|k| k.algorithms.contains(&alg))
                .collect(),
        }
    }

    /// How many keys were admitted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key was admitted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn decode(field: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let text = field
        .as_deref()
        .ok_or_else(|| format!("missing `{name}`"))?;
    B64URL
        .decode(text)
        .map_err(|_| format!("`{name}` is not base64url"))
}

/// Admit one JWK, or say why not.
fn admit(value: serde_json::Value) -> Result<VerifyKey, String> {
    let jwk: RawJwk = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if jwk.d.is_some() {
        return Err("holds a private key; a JWKS must publish public keys only".into());
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!(
            "`use` is {:?}, not \"sig\"",
            jwk.use_.unwrap_or_default()
        ));
    }
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|o| o == "verify") {
            return Err("`key_ops` does not include \"verify\"".into());
        }
    }
    let (algorithms, key): (Vec<Algorithm>, DecodingKey) = match jwk.kty.as_str() {
        "RSA" => {
            let n = decode(&jwk.n, "n")?;
            let e = decode(&jwk.e, "e")?;
            let n = strip_zeros(&n);
            let e = strip_zeros(&e);
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if bits < 2048 {
                return Err(format!(
                    "RSA modulus of {bits} bits; at least 2048 are required"
                ));
            }
            if e.len() > 4 || e.last().is_none_or(|b| b & 1 == 0) || e == [1] {
                return Err("RSA public exponent must be odd, above 1 and small".into());
            }
            if roca_fingerprint(n) {
                return Err("RSA modulus has the ROCA weakness (CVE-2017-15361)".into());
            }
            let key = DecodingKey::from_rsa_raw_components(n, e);
            (vec![Algorithm::RS256, Algorithm::PS256], key)
        }
        "EC" => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Err(format!(
                    "EC curve {:?}; only P-256 (ES256) is accepted",
                    jwk.crv
                ));
            }
            let (x, y) = (decode(&jwk.x, "x")?, decode(&jwk.y, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes".into());
            }
            let key = DecodingKey::from_ec_components(
                jwk.x.as_deref().unwrap_or_default(),
                jwk.y.as_deref().unwrap_or_default(),
            )
            .map_err(|e| e.to_string())?;
            (vec![Algorithm::ES256], key)
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err(format!("OKP curve {:?}; only Ed25519 is accepted", jwk.crv));
            }
            if decode(&jwk.x, "x")?.len() != 32 {
                return Err("Ed25519 public key must be 32 bytes".into());
            }
            let key = DecodingKey::from_ed_components(jwk.x.as_deref().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            (vec![Algorithm::EdDSA], key)
        }
        other => {
            return Err(format!(
                "key type {other:?} cannot verify an allowed algorithm"
            ))
        }
    };
    // A key that names its algorithm verifies only that one.
    let algorithms = match &jwk.alg {
        None => algorithms,
        Some(name) => {
            let named = ALLOWED_ALGORITHMS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .filter(|a| algorithms.contains(a))
                .ok_or_else(|| format!("`alg` {name:?} does not fit this key or is not allowed"))?;
            vec![named]
        }
    };
    Ok(VerifyKey {
        kid: jwk.kid,
        algorithms,
        key,
    })
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The ROCA test (Nemec et al., CCS 2017): moduli made by the flawed Infineon generator are,
/// modulo each of these small primes, a power of 65537. The published detector's primes and
/// test; a modulus that passes them all is refused.
fn roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: &[u64] = &[
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n
            .iter()
            .fold(0u64, |acc, &b| (acc * 256 + u64::from(b)) % p);
        // Is `residue` in the subgroup generated by 65537 mod p?
        let generator = 65537 % p;
        let mut power = 1u64;
        for _ in 0..p {
            if power == residue {
                return true;
            }
            power = power * generator % p;
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_encryption_and_private_keys_are_not_admitted() {
        let oct = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
        assert!(matches!(KeySet::from_json(oct), Err(KeySetError::Empty)));
        let enc = br#"{"kty":"EC","crv":"P-256","use":"enc","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}"#;
        assert!(KeySet::from_json(enc).is_err());
        // A JWKS that publishes a private key is a leak; the key is not used at all.
        let private = br#"{"kty":"EC","crv":"P-256","d":"AAAA","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}"#;
        assert!(KeySet::from_json(private).is_err());
        let sign_only = br#"{"kty":"EC","crv":"P-256","key_ops":["sign"],"x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}"#;
        assert!(KeySet::from_json(sign_only).is_err());
        let p384 = br#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#;
        assert!(KeySet::from_json(p384).is_err());
        let good = br#"{"kty":"EC","crv":"P-256","kid":"k1","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}"#;
        let set = KeySet::from_json(good).unwrap();
        assert_eq!(set.candidates(Some("k1"), Algorithm::ES256).len(), 1);
        assert!(set.candidates(Some("k1"), Algorithm::RS256).is_empty());
        assert!(set
            .candidates(Some("../../etc/passwd"), Algorithm::ES256)
            .is_empty());
    }
}
