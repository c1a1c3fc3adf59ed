//! Signed checkpoints in the C2SP formats (R-LOG-2): `tlog-checkpoint` for the text, `signed-note`
//! for the Ed25519 signature and the key encodings, so tools of the transparency-log
//! ecosystem (and a short script) can check them.
//!
//! A checkpoint note:
//!
//! ```text
//! phr.example.jp/gateway/access      <- origin
//! 1234                               <- tree size
//! 3q2+7w...=                         <- base64 root hash
//!                                    <- blank line
//! — phr.example.jp/gateway AAAAB...  <- signature line: key name, base64(key id || signature)
//! ```
//!
//! The signature covers the text up to and including the newline after the root hash. The key
//! id is the first four bytes of `SHA-256(key name || "\n" || 0x01 || public key)`.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The signed-note signature type byte of Ed25519.
const ED25519_TYPE: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a key or a note could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The key text is not in the signed-note key format.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// The note text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// No signature line by this key verifies.
    #[error("no valid signature by key {0}")]
    BadSignature(String),
    /// The key file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The key file could not be written.
    #[error(transparent)]
    Write(#[from] crate::pki::PkiError),
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_TYPE]);
    h.update(public);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A key name must be non-empty, without spaces, `+` or control characters.
fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// The key that signs checkpoints.
pub struct Signer {
    name: String,
    id: [u8; 4],
    pair: Ed25519KeyPair,
    seed: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A new random key named `name`.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| NoteError::MalformedKey("the system random source failed"))?;
        Self::from_seed(name, seed)
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::MalformedKey(
                "key name is empty or has spaces or '+'",
            ));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| NoteError::MalformedKey("not an Ed25519 seed"))?;
        let id = key_id(name, pair.public_key().as_ref());
        Ok(Signer {
            name: name.to_owned(),
            id,
            pair,
            seed,
        })
    }

    /// Parse the signed-note private key text `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    pub fn from_text(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey("does not start with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key(rest)?;
        let seed: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::MalformedKey("seed is not 32 bytes"))?;
        let signer = Self::from_seed(name, seed)?;
        if signer.id != id {
            return Err(NoteError::MalformedKey("key id does not match the key"));
        }
        Ok(signer)
    }

    /// The private key text (keep it secret; it is written with mode 0600).
    pub fn to_text(&self) -> String {
        let mut key = vec![ED25519_TYPE];
        key.extend_from_slice(&self.seed);
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.id),
            BASE64.encode(key)
        )
    }

    /// Load the key at `path`, or make one named `name` and write it there (and its public
    /// half beside it, `<path>.pub`) when the file does not exist.
    pub fn load_or_generate(path: &Path, name: &str) -> Result<Self, NoteError> {
        let io = |source| NoteError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_text(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signer = Self::generate(name)?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                crate::pki::write_file(path, signer.to_text().as_bytes(), true)?;
                let public = public_key_path(path);
                crate::pki::write_file(&public, signer.verifier().to_text().as_bytes(), false)?;
                tracing::info!(key = %path.display(), public = %public.display(), "made a new checkpoint signing key");
                Ok(signer)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The matching public key.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            id: self.id,
            public: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// A signed checkpoint note for a tree.
    pub fn sign_checkpoint(&self, origin: &str, size: u64, root: &Hash) -> String {
        self.sign_note(&checkpoint_body(origin, size, root))
    }

    /// `text` (ending in a newline) followed by a blank line and this key's signature line.
    fn sign_note(&self, text: &str) -> String {
        let mut signature = self.id.to_vec();
        signature.extend_from_slice(self.pair.sign(text.as_bytes()).as_ref());
        format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(signature)
        )
    }
}

/// Where the public half of the key at `path` is written.
pub fn public_key_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    name.into()
}

fn split_key(text: &str) -> Result<(&str, [u8; 4], Vec<u8>), NoteError> {
    // The base64 key may itself hold '+': it is everything after the second one.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::MalformedKey(
            "expected <name>+<hex id>+<base64 key>",
        ));
    };
    let id: [u8; 4] = hex::decode(id)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(NoteError::MalformedKey("key id is not 8 hex digits"))?;
    let key = BASE64
        .decode(key)
        .map_err(|_| NoteError::MalformedKey("key is not base64"))?;
    match key.split_first() {
        Some((&ED25519_TYPE, rest)) => Ok((name, id, rest.to_vec())),
        _ => Err(NoteError::MalformedKey("not an Ed25519 key")),
    }
}

/// A public key that checks checkpoint signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: [u8; 4],
    public: Vec<u8>,
}

impl Verifier {
    /// Parse the signed-note verifier key text `<name>+<hex id>+<base64(0x01 || public key)>`.
    pub fn from_text(text: &str) -> Result<Self, NoteError> {
        let (name, id, public) = split_key(text.trim())?;
        if public.len() != 32 || !valid_key_name(name) {
            return Err(NoteError::MalformedKey("not a 32-byte Ed25519 public key"));
        }
        if key_id(name, &public) != id {
            return Err(NoteError::MalformedKey("key id does not match the key"));
        }
        Ok(Verifier {
            name: name.to_owned(),
            id,
            public,
        })
    }

    /// The verifier key text, for `audit verify --key` and for auditors.
    pub fn to_text(&self) -> String {
        let mut key = vec![ED25519_TYPE];
        key.extend_from_slice(&self.public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            BASE64.encode(key)
        )
    }

    /// Check a checkpoint note's signature by this key and read it.
    pub fn open(&self, note: &str) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse(self.open_note(note)?)
    }

    /// The signed text of a note with a valid signature line by this key.
    fn open_note<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let split = note.find("\n\n").ok_or(NoteError::MalformedCheckpoint(
            "no blank line before the signatures",
        ))?;
        let (body, signatures) = (&note[..=split], &note[split + 2..]);
        let signed = signatures.lines().any(|line| {
            let Some((name, sig)) = line
                .strip_prefix(SIGNATURE_PREFIX)
                .and_then(|l| l.split_once(' '))
            else {
                return false;
            };
            let Ok(sig) = BASE64.decode(sig) else {
                return false;
            };
            name == self.name
                && sig.len() == 68
                && sig[..4] == self.id
                && UnparsedPublicKey::new(&ED25519, &self.public)
                    .verify(body.as_bytes(), &sig[4..])
                    .is_ok()
        });
        if !signed {
            return Err(NoteError::BadSignature(self.name.clone()));
        }
        Ok(body)
    }
}

fn checkpoint_body(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", BASE64.encode(root))
}

/// A checkpoint's content (after its signature was checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Records covered.
    pub size: u64,
    /// Merkle root over them.
    pub root: Hash,
}

impl Checkpoint {
    fn parse(body: &str) -> Result<Self, NoteError> {
        let mut lines = body.lines();
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::MalformedCheckpoint("fewer than three lines"));
        };
        let size = size
            .parse()
            .map_err(|_| NoteError::MalformedCheckpoint("size is not a number"))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::MalformedCheckpoint(
                "root is not a base64 SHA-256 hash",
            ))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_not_with_another() {
        let signer = Signer::generate("phr.example.jp/gw").unwrap();
        let root = [7u8; 32];
        let note = signer.sign_checkpoint("phr.example.jp/gw/access", 42, &root);
        let verifier = Verifier::from_text(&signer.verifier().to_text()).unwrap();
        let checkpoint = verifier.open(&note).unwrap();
        assert_eq!(checkpoint.size, 42);
        assert_eq!(checkpoint.root, root);
        assert_eq!(checkpoint.origin, "phr.example.jp/gw/access");

        let other = Signer::generate("phr.example.jp/gw").unwrap().verifier();
        assert!(matches!(other.open(&note), Err(NoteError::BadSignature(_))));
        let edited = note.replace("\n42\n", "\n43\n");
        assert!(verifier.open(&edited).is_err());
    }

    #[test]
    fn private_key_text_round_trips_and_checks_its_id() {
        let signer = Signer::generate("gw").unwrap();
        let text = signer.to_text();
        assert!(text.starts_with("PRIVATE+KEY+gw+"));
        let again = Signer::from_text(&text).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        let wrong_id = text.replacen(&hex::encode(signer.id), "00000000", 1);
        assert!(Signer::from_text(&wrong_id).is_err());
        assert!(Signer::generate("has space").is_err());
    }

    /// The example of the Go `note` package's documentation, the reference of C2SP signed-note:
    /// same key ids, same signature bytes, and an edited text is refused.
    #[test]
    fn agrees_with_the_signed_note_reference_example() {
        let signer = Signer::from_text(
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        )
        .unwrap();
        let verifier_text = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        assert_eq!(signer.verifier().to_text(), verifier_text);
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let note = signer.sign_note(text);
        assert_eq!(
            note,
            format!("{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
        );
        let verifier = Verifier::from_text(verifier_text).unwrap();
        assert_eq!(verifier.open_note(&note).unwrap(), text);
        assert!(verifier
            .open_note(&note.replace("cryptography", "cryptographY"))
            .is_err());
    }
}
