//! The demo's development token issuer: its own ES256 key (made at each start, never
//! written), its JWKS (written for the gateway's policy and served by the sample backend at
//! `/.well-known/jwks.json`), and three example tokens that show the identity checks.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// The demo issuer's `iss`, as in `policies/demo.toml`.
pub const ISSUER: &str = "https://issuer.demo.phr-gateway.local";
/// The audience the demo policy accepts.
pub const AUDIENCE: &str = "phr-demo";

/// What every demo token grants: reading and searching the patient's data, and adding
/// observations (the demo's one create route).
const SCOPE: &str = "patient/*.rs patient/Observation.c";
const KID: &str = "demo-es256";

/// Why the issuer could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// The key could not be made.
    #[error("cannot make the demo issuer key: {0}")]
    Key(#[from] rcgen::Error),
    /// A token could not be signed.
    #[error("cannot sign a demo token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// A signing key and its public JWKS.
pub struct DemoIssuer {
    key: EncodingKey,
    /// The JWKS document.
    pub jwks: String,
}

/// One example token.
pub struct ExampleToken {
    /// File name stem and label.
    pub name: &'static str,
    /// What the gateway will do with it.
    pub shows: &'static str,
    /// The token.
    pub token: String,
}

impl DemoIssuer {
    /// A fresh key.
    pub fn generate() -> Result<Self, IssuerError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let raw = pair.public_key_raw();
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
            "x": B64URL.encode(&raw[1..33]), "y": B64URL.encode(&raw[33..65]),
        }]})
        .to_string();
        Ok(DemoIssuer {
            key: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwks,
        })
    }

    /// A multi-factor token for `subject`, valid for an hour from `now` (benchmarks mint many).
    pub fn token(&self, subject: &str, now: i64) -> Result<String, IssuerError> {
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "azp": "phr-demo-app",
            "iat": now, "exp": now + 3600, "auth_time": now, "amr": ["pwd", "otp"],
            "sid": format!("{subject}-{now}"), "scope": SCOPE,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }

    /// A multi-factor token of a recipient's application `client` for `subject`, launched for
    /// `patient`, valid for an hour from `now` (the access benchmark's third party).
    pub fn recipient_token(
        &self,
        subject: &'static str,
        client: &'static str,
        patient: &'static str,
        now: i64,
    ) -> Result<String, IssuerError> {
        self.sign(
            &Sign {
                sub: subject,
                client,
                patient: Some(patient),
                amr: &["pwd", "otp"],
                auth_time: now,
                sid: subject,
            },
            now,
        )
    }

    /// Tokens valid for an hour from `now`: the patient's own (multi-factor, password only,
    /// multi-factor but signed in an hour ago) and two recipients' (a clinic, a lapsed insurer).
    pub fn examples(&self, now: i64) -> Result<Vec<ExampleToken>, IssuerError> {
        let app = |amr: &'static [&'static str], auth_time: i64, sid: &'static str| Sign {
            sub: "p-001",
            client: "phr-demo-app",
            patient: None,
            amr,
            auth_time,
            sid,
        };
        // A recipient's EHR launched for patient p-001: the launch context does not make it
        // the patient (R-AZ-4).
        let recipient = |sub: &'static str, client: &'static str, sid: &'static str| Sign {
            sub,
            client,
            patient: Some("p-001"),
            amr: &["pwd", "otp"],
            auth_time: now,
            sid,
        };
        let examples = [
            ("mfa", "password + one-time code: allowed (routes need MFA)", app(&["pwd", "otp"], now, "demo-mfa")),
            ("password-only", "password only: 401 identity.mfa_required", app(&["pwd"], now, "demo-pwd")),
            (
                "old-sign-in",
                "MFA an hour ago: 401 identity.step_up_required on the medication route",
                app(&["pwd", "otp"], now - 3600, "demo-old"),
            ),
            (
                "clinic",
                "a doctor at the registered clinic: data only under the patient's provision consent",
                recipient("dr-sato", "sakura-clinic-ehr", "demo-clinic"),
            ),
            (
                "insurer",
                "the insurer whose compliance confirmation lapsed: 403 access.recipient_unconfirmed",
                recipient("underwriter-1", "kenko-insurance-app", "demo-insurer"),
            ),
        ];
        examples
            .into_iter()
            .map(|(name, shows, sign)| {
                Ok(ExampleToken {
                    name,
                    shows,
                    token: self.sign(&sign, now)?,
                })
            })
            .collect()
    }

    fn sign(&self, t: &Sign, now: i64) -> Result<String, IssuerError> {
        let mut claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": t.sub, "azp": t.client,
            "iat": now, "exp": now + 3600, "auth_time": t.auth_time, "amr": t.amr,
            // Sessions are new at each demo start: a logout from an earlier run (kept in
            // the state log) must not end this run's sessions.
            "sid": format!("{}-{now}", t.sid), "jti": format!("{}-{now}", t.sid), "scope": SCOPE,
        });
        if let Some(patient) = t.patient {
            claims["patient"] = json!(patient);
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }
}

/// What one example token says.
struct Sign {
    sub: &'static str,
    client: &'static str,
    patient: Option<&'static str>,
    amr: &'static [&'static str],
    auth_time: i64,
    sid: &'static str,
}

/// Write each example token to `<dir>/<name>.jwt`.
pub fn write_tokens(dir: &Path, tokens: &[ExampleToken]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for t in tokens {
        std::fs::write(dir.join(format!("{}.jwt", t.name)), &t.token)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(token: &str) -> String {
        let payload = token.split('.').nth(1).unwrap_or_default();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(payload).unwrap_or_default()).unwrap_or_default();
        claims["sid"].as_str().unwrap_or_default().to_owned()
    }

    /// A logout in one demo run is kept in the state log; the next run's tokens must belong to
    /// new sessions or they would be refused from the start.
    #[test]
    fn each_demo_start_mints_new_sessions() {
        let issuer = DemoIssuer::generate().unwrap_or_else(|e| panic!("{e}"));
        let first = issuer.examples(1_000).unwrap_or_default();
        let later = issuer.examples(2_000).unwrap_or_default();
        assert_eq!(first.len(), 5);
        assert_ne!(sid(&first[0].token), sid(&later[0].token));
        assert!(!sid(&first[0].token).is_empty());
    }
}
