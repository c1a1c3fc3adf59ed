//! Pseudonymised subject identifiers for logs that leave the host (R-LOG-5).
//!
//! A pseudonym is `p1:` and the first 128 bits, in hex, of HMAC-SHA-256 keyed with the policy's
//! pseudonym key over the identifier. The same subject always gets the same pseudonym under one
//! key, so an auditor can still follow one person's trail; without the key the identifier
//! cannot be recovered or confirmed by guessing.

use std::path::Path;

use ring::hmac;

/// Why the pseudonym key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PseudonymError {
    /// The key file could not be read.
    #[error("cannot read the pseudonym key {path}: {source}")]
    Read {
        /// The key file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The key is too short to resist guessing.
    #[error("the pseudonym key {path} has {len} bytes; it needs at least 32")]
    TooShort {
        /// The key file.
        path: String,
        /// Its length.
        len: usize,
    },
}

/// Turns subject identifiers into pseudonyms.
pub struct Pseudonymiser {
    key: hmac::Key,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser")
    }
}

impl Pseudonymiser {
    /// A pseudonymiser with a key of at least 32 bytes.
    pub fn new(key: &[u8]) -> Option<Self> {
        (key.len() >= 32).then(|| Pseudonymiser {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        })
    }

    /// Read the key file (its raw bytes are the key; surrounding whitespace is ignored).
    pub fn from_file(path: &Path) -> Result<Self, PseudonymError> {
        let bytes = std::fs::read(path).map_err(|source| PseudonymError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let key = bytes.trim_ascii();
        Self::new(key).ok_or(PseudonymError::TooShort {
            path: path.display().to_string(),
            len: key.len(),
        })
    }

    /// The pseudonym of `identifier`.
    pub fn pseudonym(&self, identifier: &str) -> String {
        let tag = hmac::sign(&self.key, identifier.as_bytes());
        format!("p1:{}", hex::encode(&tag.as_ref()[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_per_key_and_hide_the_identifier() {
        let a = Pseudonymiser::new(&[1u8; 32]).unwrap();
        let b = Pseudonymiser::new(&[2u8; 32]).unwrap();
        let p = a.pseudonym("patient-123");
        assert_eq!(p, a.pseudonym("patient-123"));
        assert_ne!(p, a.pseudonym("patient-124"));
        assert_ne!(p, b.pseudonym("patient-123"));
        assert!(!p.contains("123"));
        assert_eq!(p.len(), 3 + 32);
        assert!(Pseudonymiser::new(&[1u8; 31]).is_none());
    }
}
