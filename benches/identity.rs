//! Token verification (issue: identity): one verification per algorithm, uncached, and the
//! verified-token cache's hit. docs/performance.md has the figures; the load figure with an
//! ES256 token through the gateway is `benches/identity-load.sh`.

// A benchmark whose set-up fails has nothing to measure: it stops loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use phr_gateway::identity::jwks::IssuerKeys;
use phr_gateway::identity::keys::KeySet;
use phr_gateway::identity::token::{self, Issuer, TokenRules};
use phr_gateway::identity::{unix_now, IdentityHeaders, IdentityPlan, MfaRules};
use serde_json::json;

const RULES: TokenRules = TokenRules {
    max_bytes: 8192,
    leeway_secs: 30,
};

/// (algorithm, signing key, public JWK)
fn keys() -> Vec<(Algorithm, EncodingKey, serde_json::Value)> {
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec");
    let ec_raw = ec.public_key_raw().to_vec();
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed");
    let ed_raw = ed.public_key_raw().to_vec();
    let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa");
    let rsa_der = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        rsa.to_pkcs1_der().expect("der")
    };
    let rsa_jwk = |kid: &str| {
        use rsa::traits::PublicKeyParts;
        json!({"kty":"RSA","kid":kid,"n":B64URL.encode(rsa.n().to_bytes_be()),"e":B64URL.encode(rsa.e().to_bytes_be())})
    };
    vec![
        (
            Algorithm::ES256,
            EncodingKey::from_ec_der(&ec.serialize_der()),
            json!({"kty":"EC","crv":"P-256","kid":"ES256","x":B64URL.encode(&ec_raw[1..33]),"y":B64URL.encode(&ec_raw[33..65])}),
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(&ed.serialize_der()),
            json!({"kty":"OKP","crv":"Ed25519","kid":"EdDSA","x":B64URL.encode(&ed_raw)}),
        ),
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_der(rsa_der.as_bytes()),
            rsa_jwk("RS256"),
        ),
        (
            Algorithm::PS256,
            EncodingKey::from_rsa_der(rsa_der.as_bytes()),
            rsa_jwk("PS256"),
        ),
    ]
}

fn verification(c: &mut Criterion) {
    let keys = keys();
    let jwks = json!({"keys": keys.iter().map(|k| k.2.clone()).collect::<Vec<_>>()}).to_string();
    let issuer = || Issuer {
        id: "bench".into(),
        issuer: "https://id.bench.example".into(),
        audiences: vec!["phr-api".into()],
        algorithms: vec![
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::RS256,
            Algorithm::PS256,
        ],
        token_type: None,
        keys: IssuerKeys::fixed(KeySet::from_json(jwks.as_bytes()).expect("jwks")),
    };
    let now = unix_now();
    let claims = json!({"iss":"https://id.bench.example","sub":"p-001","aud":"phr-api","exp":now + 3600,
        "iat":now,"auth_time":now,"amr":["pwd","otp"],"azp":"app","scope":"patient/*.rs","sid":"s-1"});
    let issuers = [issuer()];
    let mut group = c.benchmark_group("identity");
    for (alg, key, jwk) in &keys {
        let mut header = Header::new(*alg);
        header.kid = jwk["kid"].as_str().map(str::to_owned);
        let token = jsonwebtoken::encode(&header, &claims, key).expect("sign");
        let name = format!("verify {}", jwk["kid"].as_str().unwrap_or("?"));
        group.bench_function(name, |b| {
            b.iter(|| token::verify(black_box(&token), &issuers, RULES, now).expect("verifies"))
        });
    }
    let plan = IdentityPlan::new(
        vec![issuer()],
        RULES,
        MfaRules::rfc8176(),
        IdentityHeaders::default(),
    );
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ES256".into());
    let token = jsonwebtoken::encode(&header, &claims, &keys[0].1).expect("sign");
    plan.principal(&token, now).expect("first verification");
    group.bench_function("cached ES256 token", |b| {
        b.iter(|| plan.principal(black_box(&token), now).expect("cached"))
    });
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
