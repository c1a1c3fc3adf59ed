#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! Token verification against real keys of every allowed algorithm, signed in the test, and
//! the attacks a bearer-token verifier must refuse (R-AUTH-1, R-AUTH-2).

mod support;

use std::sync::OnceLock;

use jsonwebtoken::Algorithm;
use phr_gateway::decision::Reason;
use phr_gateway::identity::jwks::IssuerKeys;
use phr_gateway::identity::keys::KeySet;
use phr_gateway::identity::token::{self, Issuer, TokenError, TokenRules};
use phr_gateway::identity::{self, IdentityHeaders, IdentityPlan, MfaRules, StepUp};
use phr_gateway::policy::DataCategory;
use phr_gateway::route::Route;
use serde_json::json;
use support::issuer::*;

const RULES: TokenRules = TokenRules {
    max_bytes: 8192,
    leeway_secs: 30,
};

struct Keys {
    es: TestKey,
    ed: TestKey,
    rs: TestKey,
    ps: TestKey,
}

/// RSA key generation is slow; the keys are made once per test binary.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es: TestKey::es256("es-1"),
        ed: TestKey::eddsa("ed-1"),
        rs: TestKey::rsa("rs-1", Algorithm::RS256),
        ps: TestKey::rsa("ps-1", Algorithm::PS256),
    })
}

fn issuer_with(jwks_text: &str, algorithms: Vec<Algorithm>) -> Issuer {
    Issuer {
        id: "test".into(),
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        algorithms,
        token_type: None,
        keys: IssuerKeys::fixed(KeySet::from_json(jwks_text.as_bytes()).unwrap()),
    }
}

fn issuer() -> Issuer {
    let k = keys();
    issuer_with(
        &jwks(&[&k.es, &k.ed, &k.rs, &k.ps]),
        vec![
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::RS256,
            Algorithm::PS256,
        ],
    )
}

fn verify(token: &str) -> Result<token::Verified, TokenError> {
    token::verify(token, &[issuer()], RULES, now())
}

#[test]
fn a_token_of_each_allowed_algorithm_verifies_r_auth_1() {
    let k = keys();
    for key in [&k.es, &k.ed, &k.rs, &k.ps] {
        let token = key.sign(&mfa_claims("alice"));
        let verified = verify(&token).unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(verified.claims.sub, "alice");
        // The same token with one signature bit flipped does not.
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert!(
            verify(&flipped).is_err(),
            "{:?} accepted a flipped signature",
            key.alg
        );
    }
}

/// `header.payload.` with any signature made from pieces.
fn forge(header: serde_json::Value, claims: &serde_json::Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

#[test]
fn alg_none_in_any_casing_is_refused() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = forge(json!({"alg": alg}), &mfa_claims("mallory"), "");
        assert!(verify(&token).is_err(), "{alg} without signature");
        let token = forge(json!({"alg": alg}), &mfa_claims("mallory"), "c2ln");
        assert_eq!(
            verify(&token).unwrap_err(),
            TokenError::Algorithm(alg.into()),
            "{alg}"
        );
    }
}

#[test]
fn hs256_signed_with_the_public_key_as_secret_is_refused() {
    use hmac::{Hmac, Mac};
    let k = keys();
    for key in [&k.rs, &k.es] {
        let header = json!({"alg": "HS256", "kid": key.kid});
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(mfa_claims("mallory").to_string().as_bytes())
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key.public_bytes).unwrap();
        mac.update(message.as_bytes());
        let token = format!("{message}.{}", b64(&mac.finalize().into_bytes()));
        assert_eq!(
            verify(&token).unwrap_err(),
            TokenError::Algorithm("HS256".into())
        );
    }
}

#[test]
fn empty_truncated_and_re_encoded_signatures_are_refused() {
    let k = keys();
    let token = k.es.sign(&mfa_claims("alice"));
    let (message, signature) = token.rsplit_once('.').unwrap();
    assert!(verify(&format!("{message}.")).is_err(), "empty");
    assert!(verify(message).is_err(), "two parts");
    assert_eq!(
        verify(&format!("{message}.{}", &signature[..signature.len() - 4])).unwrap_err(),
        TokenError::BadSignature,
        "truncated"
    );
    // Standard base64 with padding instead of base64url: not the compact encoding.
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    let std = base64::engine::general_purpose::STANDARD.encode(&raw);
    if std != signature {
        assert!(verify(&format!("{message}.{std}")).is_err(), "re-encoded");
    }
    assert!(
        verify(&format!("{message}.{signature}=")).is_err(),
        "padded"
    );
    assert!(
        verify(&format!("{message}.{signature}.x")).is_err(),
        "four parts"
    );
    let token_with_space = token.replacen('.', ". ", 1);
    assert!(
        verify(&token_with_space).is_err(),
        "non-base64url character"
    );
}

#[test]
fn ecdsa_psychic_signature_r_equals_s_equals_zero_is_refused() {
    let k = keys();
    let token = k.es.sign(&mfa_claims("alice"));
    let (message, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        verify(&format!("{message}.{}", b64(&[0u8; 64]))).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn a_kid_with_path_or_sql_characters_finds_no_key() {
    let k = keys();
    for kid in [
        "../../../../etc/passwd",
        "x' OR '1'='1",
        "es-1/../es-1",
        "es-1\u{0}",
    ] {
        let token =
            k.es.sign_with_header(&json!({"alg":"ES256","kid":kid}), &mfa_claims("alice"));
        assert_eq!(
            verify(&token).unwrap_err(),
            TokenError::UnknownKey,
            "{kid:?}"
        );
    }
}

#[test]
fn key_sources_in_the_header_are_never_followed() {
    let k = keys();
    let attacker = TestKey::es256("attacker");
    for (field, value) in [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("jwk", attacker.jwk.clone()),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut header = json!({"alg":"ES256","kid":"es-1"});
        header[field] = value;
        // Signed by the attacker, and even by the right key: refused either way.
        for key in [&attacker, &k.es] {
            let token = key.sign_with_header(&header, &mfa_claims("mallory"));
            assert!(
                matches!(
                    verify(&token).unwrap_err(),
                    TokenError::KeySourceInHeader(_)
                ),
                "{field}"
            );
        }
    }
}

#[test]
fn time_issuer_and_audience_claims_are_checked() {
    let k = keys();
    let mut claims = mfa_claims("alice");
    claims["exp"] = json!(now() - 31);
    assert_eq!(
        verify(&k.es.sign(&claims)).unwrap_err(),
        TokenError::Expired
    );
    claims["exp"] = json!(now() - 5); // within the leeway
    assert!(verify(&k.es.sign(&claims)).is_ok());
    let mut claims = mfa_claims("alice");
    claims["nbf"] = json!(now() + 300);
    assert_eq!(
        verify(&k.es.sign(&claims)).unwrap_err(),
        TokenError::NotYetValid
    );
    let mut claims = mfa_claims("alice");
    claims["iat"] = json!(now() + 300);
    assert_eq!(
        verify(&k.es.sign(&claims)).unwrap_err(),
        TokenError::NotYetValid
    );
    let mut claims = mfa_claims("alice");
    claims["iss"] = json!("https://evil.example");
    assert_eq!(
        verify(&k.es.sign(&claims)).unwrap_err(),
        TokenError::UnknownIssuer
    );
    let mut claims = mfa_claims("alice");
    claims["aud"] = json!(["other-api"]);
    assert_eq!(
        verify(&k.es.sign(&claims)).unwrap_err(),
        TokenError::WrongAudience
    );
    claims["aud"] = json!(["other-api", AUDIENCE]);
    assert!(verify(&k.es.sign(&claims)).is_ok());
    let mut claims = mfa_claims("alice");
    claims.as_object_mut().unwrap().remove("exp");
    assert!(
        matches!(
            verify(&k.es.sign(&claims)).unwrap_err(),
            TokenError::Malformed(_)
        ),
        "exp is required"
    );
    // A token about no one: every such token would be one principal (its rate limit, its
    // subject header, its own data).
    let mut claims = mfa_claims("alice");
    claims["sub"] = json!("");
    assert_eq!(
        verify(&k.es.sign(&claims)).unwrap_err(),
        TokenError::Malformed("sub is empty")
    );
}

#[test]
fn unknown_crit_duplicate_claims_and_oversized_tokens_are_refused() {
    let k = keys();
    let token = k.es.sign_with_header(
        &json!({"alg":"ES256","kid":"es-1","crit":["exp"],"exp":1}),
        &mfa_claims("alice"),
    );
    assert_eq!(verify(&token).unwrap_err(), TokenError::UnknownCritical);

    // `sub` twice: which one would the backend believe?
    let claims = mfa_claims("alice")
        .to_string()
        .replacen("{", "{\"sub\":\"admin\",", 1);
    let header = json!({"alg":"ES256","kid":"es-1"}).to_string();
    let message = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &k.es.encoding, Algorithm::ES256).unwrap();
    assert_eq!(
        verify(&format!("{message}.{signature}")).unwrap_err(),
        TokenError::Malformed("a claim is given twice")
    );

    // `alg` twice in the header: one reader might take ES256, another none.
    let header = r#"{"alg":"ES256","kid":"es-1","alg":"none"}"#;
    let message = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(mfa_claims("alice").to_string().as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &k.es.encoding, Algorithm::ES256).unwrap();
    assert_eq!(
        verify(&format!("{message}.{signature}")).unwrap_err(),
        TokenError::Malformed("header repeats a name")
    );

    let mut claims = mfa_claims("alice");
    claims["padding"] = json!("x".repeat(9000));
    assert_eq!(
        verify(&k.es.sign(&claims)).unwrap_err(),
        TokenError::TooLarge(8192)
    );
}

#[test]
fn a_token_from_a_rotated_out_key_is_refused() {
    let k = keys();
    let old = TestKey::es256("es-old");
    let token = old.sign(&mfa_claims("alice"));
    let before = issuer_with(&jwks(&[&old, &k.es]), vec![Algorithm::ES256]);
    assert!(token::verify(&token, &[before], RULES, now()).is_ok());
    let after = issuer_with(&jwks(&[&k.es]), vec![Algorithm::ES256]);
    assert_eq!(
        token::verify(&token, &[after], RULES, now()).unwrap_err(),
        TokenError::UnknownKey
    );
    // Same kid, new key material: the old signature fails.
    let reused = TestKey::es256("es-old");
    let after = issuer_with(&jwks(&[&reused]), vec![Algorithm::ES256]);
    assert_eq!(
        token::verify(&token, &[after], RULES, now()).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn an_algorithm_the_issuer_does_not_use_is_refused_even_with_a_good_signature() {
    let k = keys();
    let only_es = issuer_with(&jwks(&[&k.es, &k.rs]), vec![Algorithm::ES256]);
    let token = k.rs.sign(&mfa_claims("alice"));
    assert_eq!(
        token::verify(&token, &[only_es], RULES, now()).unwrap_err(),
        TokenError::Algorithm("RS256".into())
    );
}

#[test]
fn token_type_is_checked_when_the_issuer_requires_one() {
    let k = keys();
    let mut strict = issuer_with(&jwks(&[&k.es]), vec![Algorithm::ES256]);
    strict.token_type = Some("at+jwt".into());
    let plain = k.es.sign(&mfa_claims("alice"));
    assert!(matches!(
        token::verify(&plain, &[strict], RULES, now()).unwrap_err(),
        TokenError::WrongType(_)
    ));
    let mut strict = issuer_with(&jwks(&[&k.es]), vec![Algorithm::ES256]);
    strict.token_type = Some("at+jwt".into());
    let typed = k.es.sign_with_header(
        &json!({"alg":"ES256","kid":"es-1","typ":"application/at+JWT"}),
        &mfa_claims("alice"),
    );
    assert!(token::verify(&typed, &[strict], RULES, now()).is_ok());
}

fn plan() -> IdentityPlan {
    IdentityPlan::new(
        vec![issuer()],
        RULES,
        MfaRules::rfc8176(),
        IdentityHeaders::default(),
    )
}

fn route(mfa: bool, step_up: StepUp) -> Route {
    Route {
        id: "r".into(),
        pattern: "/r".into(),
        methods: vec![http::Method::GET],
        upstream: 0,
        category: DataCategory::Checkup,
        anonymous: false,
        mfa,
        step_up,
        allow_from: Default::default(),
        access: Default::default(),
        inspect: Default::default(),
    }
}

fn bearer(token: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h
}

#[test]
fn mfa_routes_refuse_single_factor_tokens_r_auth_2() {
    let k = keys();
    let plan = plan();
    let mut single = mfa_claims("bob");
    single["amr"] = json!(["pwd"]);
    let refusal = identity::identify(
        &bearer(&k.es.sign(&single)),
        &route(true, StepUp::default()),
        &plan,
        Default::default(),
        now(),
    )
    .unwrap_err();
    assert_eq!(refusal.reason, Reason::IdentityMfaRequired);
    assert!(refusal
        .challenge
        .unwrap()
        .contains("insufficient_user_authentication"));
    // The same token passes a route that does not ask for MFA.
    assert!(identity::identify(
        &bearer(&k.es.sign(&single)),
        &route(false, StepUp::default()),
        &plan,
        Default::default(),
        now()
    )
    .is_ok());
    let principal = identity::identify(
        &bearer(&k.es.sign(&mfa_claims("carol"))),
        &route(true, StepUp::default()),
        &plan,
        Default::default(),
        now(),
    )
    .unwrap()
    .unwrap();
    assert!(principal.multi_factor);
    assert_eq!(principal.client_id.as_deref(), Some("phr-app"));
    assert_eq!(principal.scopes, ["openid", "patient/*.rs"]);
}

#[test]
fn step_up_asks_for_a_fresh_sign_in_rfc_9470() {
    let k = keys();
    let plan = plan();
    let recent = StepUp {
        max_age_secs: Some(300),
        acr_values: Vec::new(),
    };
    let mut old = mfa_claims("dave");
    old["auth_time"] = json!(now() - 3600);
    let refusal = identity::identify(
        &bearer(&k.es.sign(&old)),
        &route(true, recent.clone()),
        &plan,
        Default::default(),
        now(),
    )
    .unwrap_err();
    assert_eq!(refusal.reason, Reason::IdentityStepUpRequired);
    let challenge = refusal.challenge.unwrap();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\"")
            && challenge.contains("max_age=300"),
        "{challenge}"
    );
    assert!(identity::identify(
        &bearer(&k.es.sign(&mfa_claims("dave"))),
        &route(true, recent),
        &plan,
        Default::default(),
        now()
    )
    .is_ok());
}

#[test]
fn missing_and_malformed_authorization_headers_are_refused() {
    let plan = plan();
    let r = route(true, StepUp::default());
    let none = identity::identify(
        &http::HeaderMap::new(),
        &r,
        &plan,
        Default::default(),
        now(),
    )
    .unwrap_err();
    assert_eq!(none.reason, Reason::IdentityMissing);
    let mut basic = http::HeaderMap::new();
    basic.insert(
        http::header::AUTHORIZATION,
        "Basic YWxpY2U6cHc=".parse().unwrap(),
    );
    assert_eq!(
        identity::identify(&basic, &r, &plan, Default::default(), now())
            .unwrap_err()
            .reason,
        Reason::IdentityMissing
    );
    let bad = identity::identify(&bearer("not-a-token"), &r, &plan, Default::default(), now())
        .unwrap_err();
    assert_eq!(bad.reason, Reason::IdentityInvalidToken);
    assert!(bad.challenge.unwrap().contains("error=\"invalid_token\""));
}

#[test]
fn a_cached_token_still_expires() {
    let k = keys();
    let plan = plan();
    let mut claims = mfa_claims("erin");
    claims["exp"] = json!(now() + 10);
    let token = k.es.sign(&claims);
    assert!(plan.principal(&token, now()).is_ok());
    assert!(plan.principal(&token, now()).is_ok(), "from the cache");
    assert_eq!(
        plan.principal(&token, now() + 41).unwrap_err(),
        TokenError::Expired
    );
}

/// Every Wycheproof JWS vector (`../shared/corpora/jwt/`): an `invalid` one is refused, a
/// `valid` one passes the signature layer. (Their payloads are not claim sets, so end to end
/// every one would be refused anyway; the signature layer is what they test.)
#[test]
fn wycheproof_jws_vectors_agree() {
    let dir = std::env::var_os("PHR_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let path = dir.join("corpora/jwt/wycheproof-jws.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipped: corpus not found at {}", path.display());
        return;
    };
    let mut disagreements = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let jws = v["jws"].as_str().unwrap_or_default();
        let outcome = KeySet::from_json(v["key"].to_string().as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|keys| {
                token::verify_signature_only(jws, &keys, 16 * 1024).map_err(|e| e.to_string())
            });
        let expect_accept = v["expect"] == "accept";
        match (&outcome, expect_accept) {
            (Ok(()), true) => accepted += 1,
            (Err(_), false) => refused += 1,
            _ => disagreements.push(format!(
                "{} {} {}: {:?}",
                v["id"], v["group"], v["comment"], outcome
            )),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(accepted > 0 && refused > 0);
    eprintln!("wycheproof: {accepted} accepted, {refused} refused, as expected");
}

#[test]
fn identity_headers_carry_any_subject_losslessly() {
    let k = keys();
    let plan = plan();
    let mut claims = mfa_claims("山田%花子");
    claims["sub"] = json!("山田%花子\u{7}");
    let principal = plan.principal(&k.es.sign(&claims), now()).unwrap();
    let subject = principal
        .upstream_headers
        .iter()
        .find(|(name, _)| name == "x-phr-subject")
        .map(|(_, value)| value.to_str().unwrap().to_owned())
        .expect("the subject header is never dropped");
    assert_eq!(subject, "%E5%B1%B1%E7%94%B0%25%E8%8A%B1%E5%AD%90%07");
    let decoded = percent_encoding::percent_decode_str(&subject)
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, "山田%花子\u{7}");
    assert!(principal
        .upstream_headers
        .iter()
        .any(|(n, v)| n == "x-phr-scopes" && v == "openid patient/*.rs"));
}

/// `SessionRegistry::revoke` (what the admin API will call) writes the event durably to the
/// state log before it applies it; a registry rebuilt from that log refuses the same token.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_is_recorded_before_it_applies_and_replays_r_auth_3() {
    use phr_gateway::audit::{AuditSink, Durability, OnFailure, Signer, StateEvent, StoreConfig};
    use phr_gateway::identity::{SessionLimits, SessionRegistry};
    let dir = tempfile::tempdir().unwrap();
    let sink = AuditSink::open(StoreConfig {
        dir: dir.path().to_path_buf(),
        node_id: std::sync::Arc::from("n"),
        origin: "test/gw".into(),
        signer: Signer::generate("test/gw").unwrap(),
        checkpoint_every: 100,
        checkpoint_interval: std::time::Duration::from_secs(60),
        segment_max_bytes: 1 << 20,
        sync_interval: std::time::Duration::from_millis(2),
        access_durability: Durability::Batched,
        on_failure: OnFailure::FailClosed,
        queue_capacity: 16,
    })
    .unwrap();
    let k = keys();
    let plan = plan();
    let principal = plan
        .principal(&k.es.sign(&mfa_claims("judy")), now())
        .unwrap();
    let limits = SessionLimits {
        idle_secs: 600,
        absolute_secs: 3600,
    };
    let registry = SessionRegistry::default();
    assert!(registry.check(&principal, limits, now()).is_ok());
    let event = StateEvent::TokenRevoked {
        token_id: principal.token_id.clone().unwrap(),
        by: "test".into(),
    };
    let seq = registry.revoke(&sink, event).await.unwrap();
    assert_eq!(
        registry
            .check(&principal, limits, now())
            .unwrap_err()
            .reason,
        Reason::IdentitySessionRevoked
    );
    // On disk already (durable), and a new registry replays it.
    let events = phr_gateway::audit::segment::read_records(&dir.path().join("state")).unwrap();
    assert_eq!(events[seq as usize]["event"], "token_revoked");
    let replayed =
        phr_gateway::audit::segment::read_replayed_state(&dir.path().join("state")).unwrap();
    let rebuilt = SessionRegistry::default();
    assert_eq!(rebuilt.replay(&replayed), 1);
    assert_eq!(
        rebuilt.check(&principal, limits, now()).unwrap_err().reason,
        Reason::IdentitySessionRevoked
    );
    tokio::task::spawn_blocking(move || sink.close())
        .await
        .unwrap();
}
