//! `phr-gateway demo`: the gateway on embedded defaults, with nothing to install.
//!
//! Makes development certificates (rcgen) in a state folder, writes the embedded
//! `policies/demo.toml` next to them, starts a sample FHIR backend on loopback and the gateway
//! in front of it, and prints commands to try.

pub mod backend;
pub mod issuer;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::pki::{self, DevCa, PkiError};

/// The demo policy, embedded so the demo runs from any folder.
pub const DEMO_POLICY: &str = include_str!("../policies/demo.toml");

/// The demo gateway's TLS listener, as written in `policies/demo.toml`.
pub const DEFAULT_PUBLIC: &str = "127.0.0.1:8443";
/// The demo's redirect listener, as written in `policies/demo.toml`.
pub const DEFAULT_REDIRECT: &str = "127.0.0.1:8080";
/// The sample backend's listener, as written in `policies/demo.toml`.
pub const DEFAULT_BACKEND: &str = "127.0.0.1:8081";
/// The demo's admin listener, as written in `policies/demo.toml`.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9443";

/// Where the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// State folder (certificates, policy).
    pub state_dir: PathBuf,
    /// Gateway TLS listener.
    pub public: SocketAddr,
    /// Redirect listener.
    pub redirect: SocketAddr,
    /// Sample backend listener.
    pub backend: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
}

/// Why the demo could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Certificates could not be made or written.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The demo issuer could not be made.
    #[error(transparent)]
    Issuer(#[from] issuer::IssuerError),
    /// The state folder could not be made.
    #[error("cannot create {}: {source}", path.display())]
    StateDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The files the demo made.
#[derive(Clone, Debug)]
pub struct DemoFiles {
    /// The written policy.
    pub policy: PathBuf,
    /// The CA certificate clients should trust.
    pub ca_cert: PathBuf,
    /// Where the example tokens are.
    pub tokens: PathBuf,
    /// The demo issuer's JWKS, for the sample backend to serve.
    pub jwks: String,
}

/// The clinic's confirmation line in `policies/demo.toml`, given today's date at each start so
/// that the demo's registered clinic never lapses.
const CLINIC_CONFIRMED: &str =
    "compliance_confirmed = 2026-11-01   # demo: replaced by today's date";

/// The demo policy with the listener and backend addresses of `opts`, and the clinic confirmed
/// today.
pub fn demo_policy_text(opts: &DemoOptions) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    DEMO_POLICY
        .replace(
            CLINIC_CONFIRMED,
            &format!("compliance_confirmed = {today}   # written by `phr-gateway demo`"),
        )
        .replace(
            &format!("\"{DEFAULT_PUBLIC}\""),
            &format!("\"{}\"", opts.public),
        )
        .replace(
            &format!("\"{DEFAULT_REDIRECT}\""),
            &format!("\"{}\"", opts.redirect),
        )
        .replace(
            &format!("\"http://{DEFAULT_BACKEND}\""),
            &format!("\"http://{}\"", opts.backend),
        )
        .replace(
            &format!("\"{DEFAULT_ADMIN}\""),
            &format!("\"{}\"", opts.admin),
        )
}

/// Make the state folder, certificates (kept when they exist, so a trusted CA file stays
/// valid across runs) and the policy.
pub fn prepare(opts: &DemoOptions) -> Result<DemoFiles, DemoError> {
    let certs = opts.state_dir.join("certs");
    std::fs::create_dir_all(&certs).map_err(|source| DemoError::StateDir {
        path: certs.clone(),
        source,
    })?;
    let ca_cert = certs.join("ca.crt");
    let made = [
        "server.crt",
        "server.key",
        "admin.crt",
        "admin.key",
        "ca.crt",
    ];
    if made.iter().any(|name| !certs.join(name).exists()) {
        let ca = DevCa::new("phr-gateway demo CA")?;
        ca.issue_server(&["localhost", "127.0.0.1", "::1"])?
            .write(&certs, "server")?;
        // The demo administrator's client certificate for the admin listener (mTLS).
        ca.issue_client(DEMO_ADMIN)?.write(&certs, "admin")?;
        pki::write_file(&ca_cert, ca.cert_pem().as_bytes(), false)?;
    }
    let policy = opts.state_dir.join("policy.toml");
    pki::write_file(&policy, demo_policy_text(opts).as_bytes(), false)?;
    std::fs::write(opts.state_dir.join(".gitignore"), "*\n").map_err(|source| {
        DemoError::StateDir {
            path: opts.state_dir.clone(),
            source,
        }
    })?;
    let dev_issuer = issuer::DemoIssuer::generate()?;
    let state_err = |path: PathBuf| move |source| DemoError::StateDir { path, source };
    let issuer_dir = opts.state_dir.join("issuer");
    std::fs::create_dir_all(&issuer_dir).map_err(state_err(issuer_dir.clone()))?;
    pki::write_file(
        &issuer_dir.join("jwks.json"),
        dev_issuer.jwks.as_bytes(),
        false,
    )?;
    let tokens = opts.state_dir.join("tokens");
    let examples = dev_issuer.examples(crate::identity::unix_now())?;
    issuer::write_tokens(&tokens, &examples).map_err(state_err(tokens.clone()))?;
    Ok(DemoFiles {
        policy,
        ca_cert,
        tokens,
        jwks: dev_issuer.jwks,
    })
}

/// The walkthrough printed when the demo starts.
pub fn instructions(opts: &DemoOptions, files: &DemoFiles) -> String {
    let ca = display(&files.ca_cert);
    let base = format!("https://{}", opts.public);
    let mut s = String::new();
    let _ = writeln!(s, "phr-gateway demo is running. Stop it with Ctrl-C.");
    let _ = writeln!(s, "  gateway   {base}  (TLS 1.3 only; h2 and http/1.1)");
    let _ = writeln!(
        s,
        "  redirect  http://{}  (answers only 308 to https)",
        opts.redirect
    );
    let _ = writeln!(
        s,
        "  backend   http://{}  (sample FHIR data, loopback only)",
        opts.backend
    );
    let _ = writeln!(s, "  policy    {}", display(&files.policy));
    let _ = writeln!(s);
    let _ = writeln!(s, "Try:");
    let _ = writeln!(
        s,
        "  # forwarded: the one anonymous route, FHIR's capability statement (note HSTS, no backend"
    );
    let _ = writeln!(s, "  # Server banner)");
    let _ = writeln!(s, "  curl -i --cacert {ca} {base}/fhir/metadata");
    let tokens = display(&files.tokens);
    let _ = writeln!(
        s,
        "  # refused 401 identity.missing: a patient's record needs a verified identity"
    );
    let _ = writeln!(s, "  curl -i --cacert {ca} {base}/fhir/Patient/p-001");
    let _ = writeln!(
        s,
        "  # the demo is its own token issuer (JWKS at http://{}/.well-known/jwks.json);",
        opts.backend
    );
    let _ = writeln!(s, "  # example tokens in {tokens}/:");
    let patient = format!("-H \"Authorization: Bearer $(cat {tokens}/mfa.jwt)\"");
    let own = "-H 'PHR-Purpose: self-management'";
    let _ = writeln!(
        s,
        "  #   mfa.jwt (password + one-time code), stating its purpose (R-AZ-2): allowed"
    );
    let _ = writeln!(
        s,
        "  curl -s --cacert {ca} {patient} {own} '{base}/fhir/Observation?patient=p-001'"
    );
    let _ = writeln!(
        s,
        "  #   on a `fhir` route the scope and the patient come from the request itself"
    );
    let _ = writeln!(
        s,
        "  curl -s --cacert {ca} {patient} {base}/fhir/Patient/p-001"
    );
    let _ = writeln!(
        s,
        "  curl -s --cacert {ca} {patient} '{base}/fhir/Immunization?patient=p-001'"
    );
    let _ = writeln!(
        s,
        "  #   the same token for another patient's data: 403 access.subject_mismatch"
    );
    let _ = writeln!(
        s,
        "  curl -i --cacert {ca} {patient} {own} '{base}/fhir/Observation?patient=p-002'"
    );
    let _ = writeln!(s, "  #   password-only.jwt: 401 identity.mfa_required");
    let _ = writeln!(
        s,
        "  curl -i --cacert {ca} -H \"Authorization: Bearer $(cat {tokens}/password-only.jwt)\" {own} '{base}/fhir/Observation?patient=p-001'"
    );
    let _ = writeln!(
        s,
        "  #   old-sign-in.jwt (MFA an hour ago): 401 identity.step_up_required on medications"
    );
    let _ = writeln!(
        s,
        "  curl -i --cacert {ca} -H \"Authorization: Bearer $(cat {tokens}/old-sign-in.jwt)\" '{base}/fhir/MedicationStatement?patient=p-001'"
    );
    third_party_walkthrough(&mut s, &ca, &base, &tokens, &patient);
    let _ = writeln!(s, "  #   log out, then the same token is refused");
    let _ = writeln!(
        s,
        "  curl -i --cacert {ca} -X POST -H \"Authorization: Bearer $(cat {tokens}/mfa.jwt)\" {base}/.phr/session/logout"
    );
    let _ = writeln!(
        s,
        "  # refused 404 route.not_found: default deny, the backend never sees it"
    );
    let _ = writeln!(
        s,
        "  curl -i --cacert {ca} {base}/fhir/Patient/p-001/_history"
    );
    let _ = writeln!(
        s,
        "  # refused 403 inspect.blocked: input inspection (無害化) finds script in the query"
    );
    let _ = writeln!(
        s,
        "  curl -i --cacert {ca} '{base}/fhir/metadata?q=%3Cscript%3Ealert(1)%3C/script%3E'"
    );
    let _ = writeln!(
        s,
        "  # sending a reading in needs the patient's acquisition consent (R-AZ-3); then its note's"
    );
    let _ = writeln!(
        s,
        "  # markup is neutralised (無害化, R-WAF-4): it reaches the backend as text; see PHR-Neutralised"
    );
    let _ = writeln!(
        s,
        "  curl -s -w '\\n' --cacert {ca} {patient} -H 'Content-Type: application/json' --data '{ACQUISITION_EXAMPLE}' {base}/.phr/consents"
    );
    let _ = writeln!(
        s,
        "  curl -s -i --cacert {ca} {patient} {own} -H 'Content-Type: application/fhir+json' --data '{NEUTRALISED_EXAMPLE}' {base}/fhir/Observation"
    );
    let _ = writeln!(
        s,
        "  # a photo sent inline (FHIR Attachment.data) loses its metadata (無害化, R-WAF-2): this PNG's"
    );
    let _ = writeln!(
        s,
        "  # text chunk names the patient; it reaches the backend rebuilt without it"
    );
    let _ = writeln!(
        s,
        "  curl -s -i --cacert {ca} {patient} {own} -H 'Content-Type: application/fhir+json' --data '{DISARMED_EXAMPLE}' {base}/fhir/Observation"
    );
    let _ = writeln!(s, "  # refused 405 route.method_not_allowed");
    let _ = writeln!(
        s,
        "  curl -i --cacert {ca} -X DELETE {base}/fhir/Patient/p-001"
    );
    let _ = writeln!(
        s,
        "  # refused 421 route.host_not_served: a Host the policy does not list (R-NET-2)"
    );
    let _ = writeln!(
        s,
        "  curl -i --cacert {ca} -H 'Host: evil.example' {base}/fhir/metadata"
    );
    let _ = writeln!(s, "  # refused: TLS 1.2");
    let _ = writeln!(s, "  curl --cacert {ca} --tls-max 1.2 {base}/fhir/metadata");
    let _ = writeln!(s, "  # the redirect listener");
    let _ = writeln!(s, "  curl -i http://{}/fhir/metadata", opts.redirect);
    let _ = writeln!(s, "  # explain a request without sending it");
    let _ = writeln!(
        s,
        "  echo '{{\"method\":\"GET\",\"path\":\"/admin\"}}' | phr-gateway explain --policy {} --requests -",
        display(&files.policy)
    );
    let certs = display(&opts.state_dir.join("certs"));
    let _ = writeln!(
        s,
        "  # the admin listener (mTLS as {DEMO_ADMIN}): status, emergency stop, back to normal"
    );
    let admin = format!(
        "phr-gateway admin --url https://{} --ca {ca} --cert {certs}/admin.crt --key {certs}/admin.key",
        opts.admin
    );
    let _ = writeln!(s, "  {admin} status");
    let _ = writeln!(s, "  {admin} stop --retry-after 60   # users now get 503");
    let _ = writeln!(s, "  {admin} resume");
    let _ = writeln!(
        s,
        "  {admin} report              # compliance report (R-CMP-1)"
    );
    let audit = display(&opts.state_dir.join("audit"));
    let key = display(&opts.state_dir.join("audit-signing.key.pub"));
    let _ = writeln!(
        s,
        "  # every request above left a record (refused ones too); verify the trail"
    );
    let _ = writeln!(s, "  tail -n 3 {audit}/access/*.jsonl");
    let _ = writeln!(
        s,
        "  phr-gateway audit verify {audit} --key {key}   (checkpoints every 5 s and on exit)"
    );
    s
}

/// The third-party part of the walkthrough (R-AZ-4, R-AZ-6, R-AZ-8, R-LOG-3): the clinic is
/// refused, the patient consents, the clinic reads and the release is recorded, the patient
/// reads the record and withdraws, the clinic is refused again; the lapsed insurer is refused.
/// The acquisition consent the walkthrough gives before it sends a reading in.
pub const ACQUISITION_EXAMPLE: &str =
    r#"{"kind":"acquisition","categories":["checkup"],"purpose":"self-management"}"#;

/// The demo's inline-file example: an Observation with a 1×1 PNG whose `tEXt` chunk carries
/// a patient's name; the gateway forwards it rebuilt without the chunk (R-WAF-2).
pub const DISARMED_EXAMPLE: &str = r#"{"resourceType":"Observation","status":"final","code":{"text":"皮膚の写真"},"subject":{"reference":"Patient/p-001"},"valueAttachment":{"contentType":"image/png","data":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAAFnRFWHRDb21tZW50AHBhdGllbnQgWWFtYWRhamPl8wAAAAxJREFUeJxj+M/AAAADAQEAyf6S7wAAAABJRU5ErkJggg=="}}"#;

/// The resource the walkthrough posts: a reading whose note carries markup.
pub const NEUTRALISED_EXAMPLE: &str = r#"{"resourceType":"Observation","status":"final","code":{"text":"血圧"},"subject":{"reference":"Patient/p-001"},"valueString":"118/76 mmHg","note":[{"text":"<img src=x onerror=alert(1)> 朝食後"}]}"#;

fn third_party_walkthrough(s: &mut String, ca: &str, base: &str, tokens: &str, patient: &str) {
    let clinic = format!(
        "curl -s -w '\\n' --cacert {ca} -H \"Authorization: Bearer $(cat {tokens}/clinic.jwt)\" -H 'PHR-Purpose: treatment' '{base}/fhir/Observation?patient=p-001'"
    );
    let json = "-H 'Content-Type: application/json'";
    let lines = [
        "# third parties: clinic.jwt is a doctor at the registered clinic (launched for p-001)".to_owned(),
        "#   no consent of p-001 yet: 403 access.provision_consent_required".to_owned(),
        clinic.clone(),
        "#   p-001 consents to provide checkup data to the clinic for treatment: 201 and its id".to_owned(),
        format!(
            "CONSENT=$(curl -s --cacert {ca} {patient} {json} -d '{{\"kind\":\"provision\",\"recipient\":\"sakura-clinic\",\"purpose\":\"treatment\",\"categories\":[\"checkup\"]}}' {base}/.phr/consents | sed -n 's/.*\"consent\": *\"\\([^\"]*\\)\".*/\\1/p'); echo $CONSENT"
        ),
        "#   the clinic now gets the data; the release was recorded before it left (R-LOG-3)".to_owned(),
        clinic.clone(),
        "#   p-001 reads who received their data".to_owned(),
        format!("curl -s -w '\\n' --cacert {ca} {patient} {base}/.phr/provisions"),
        "#   p-001 withdraws with one call; the clinic's next request is refused (R-AZ-6)".to_owned(),
        format!("curl -s -w '\\n' --cacert {ca} {patient} -X POST {base}/.phr/consents/$CONSENT/withdraw"),
        clinic,
        "#   the insurer's compliance confirmation lapsed: 403 access.recipient_unconfirmed (R-AZ-8)".to_owned(),
        format!(
            "curl -s -w '\\n' --cacert {ca} -H \"Authorization: Bearer $(cat {tokens}/insurer.jwt)\" -H 'PHR-Purpose: insurance' '{base}/fhir/Observation?patient=p-001'"
        ),
    ];
    for line in lines {
        let _ = writeln!(s, "  {line}");
    }
}

/// The demo administrator's name (and client certificate CN).
pub const DEMO_ADMIN: &str = "demo-admin";

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_policy_addresses_are_replaced() {
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let opts = DemoOptions {
            state_dir: PathBuf::from(".phr-demo"),
            public: addr(1001),
            redirect: addr(1002),
            backend: addr(1003),
            admin: addr(1004),
        };
        let text = demo_policy_text(&opts);
        assert!(text.contains("\"127.0.0.1:1001\""));
        assert!(text.contains("\"127.0.0.1:1002\""));
        assert!(text.contains("\"http://127.0.0.1:1003\""));
        assert!(text.contains("\"127.0.0.1:1004\""));
        for default in [
            DEFAULT_PUBLIC,
            DEFAULT_BACKEND,
            DEFAULT_ADMIN,
            CLINIC_CONFIRMED,
        ] {
            assert!(!text.contains(default), "{default} left in the policy");
        }
        let today = time::OffsetDateTime::now_utc().date().to_string();
        assert!(text.contains(&format!("compliance_confirmed = {today}")));
    }
}
