//! A token issuer for tests: real keys of each allowed algorithm, made at test time, and
//! tokens signed with them (plus hand-made malformed ones).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://id.test.example";
pub const AUDIENCE: &str = "phr-api";

/// A signing key and its public JWK.
pub struct TestKey {
    pub alg: Algorithm,
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// For the HS256-with-the-public-key attack: the public key's bytes.
    pub public_bytes: Vec<u8>,
}

impl TestKey {
    pub fn es256(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = pair.public_key_raw().to_vec();
        TestKey {
            alg: Algorithm::ES256,
            kid: kid.into(),
            encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({"kty":"EC","crv":"P-256","kid":kid,"use":"sig",
                "x": B64URL.encode(&raw[1..33]), "y": B64URL.encode(&raw[33..65])}),
            public_bytes: raw,
        }
    }

    pub fn eddsa(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let raw = pair.public_key_raw().to_vec();
        TestKey {
            alg: Algorithm::EdDSA,
            kid: kid.into(),
            encoding: EncodingKey::from_ed_der(&pair.serialize_der()),
            jwk: json!({"kty":"OKP","crv":"Ed25519","kid":kid,"x": B64URL.encode(&raw)}),
            public_bytes: raw,
        }
    }

    /// RS256 or PS256 with a fresh 2048-bit key.
    pub fn rsa(kid: &str, alg: Algorithm) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let der = key.to_pkcs1_der().unwrap();
        let n = key.n().to_bytes_be();
        TestKey {
            alg,
            kid: kid.into(),
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({"kty":"RSA","kid":kid,"n": B64URL.encode(&n), "e": B64URL.encode(key.e().to_bytes_be())}),
            public_bytes: n,
        }
    }

    /// A token with these claims, signed by this key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// A token with a hand-made header, signed by this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{message}.{signature}")
    }
}

/// An `[[issuers]]` table for the test issuer (ES256); `keys` says where its keys come from
/// (`jwks_file = ...` or `jwks_url = ...` and friends).
pub fn issuer_toml(keys: &str) -> String {
    format!(
        "\n[[issuers]]\nid = \"test-idp\"\nissuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\nalgorithms = [\"ES256\"]\n{keys}\n"
    )
}

/// A JWKS document of these keys.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a fresh token that signed in with password + one-time code.
pub fn mfa_claims(sub: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": sub, "aud": AUDIENCE, "exp": now + 600, "iat": now - 5,
        "auth_time": now - 60, "amr": ["pwd", "otp"], "azp": "phr-app", "scope": "openid patient/*.rs",
        "sid": format!("sid-{sub}"), "jti": format!("jti-{sub}-{now}")
    })
}

/// base64url of raw bytes.
pub fn b64(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

/// A JWKS endpoint over real TLS whose document can be changed (or broken) while it runs.
pub struct JwksServer {
    pub port: u16,
    /// The document served; `None` answers 500.
    pub document: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    pub async fn start(tls: std::sync::Arc<rustls::ServerConfig>, document: String) -> Self {
        use http_body_util::Full;
        use hyper::body::Bytes;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Some(document)));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (doc, count) = (shared.clone(), hits.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (doc, count, acceptor) = (doc.clone(), count.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |_req: hyper::Request<hyper::body::Incoming>| {
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let body = doc.lock().unwrap().clone();
                            async move {
                                let response = match body {
                                    Some(b) => hyper::Response::new(Full::new(Bytes::from(b))),
                                    None => hyper::Response::builder()
                                        .status(500)
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                };
                                Ok::<_, hyper::Error>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        JwksServer {
            port,
            document: shared,
            hits,
        }
    }

    pub fn serve(&self, document: Option<String>) {
        *self.document.lock().unwrap() = document;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}
