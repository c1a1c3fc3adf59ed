#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! Third-party provision through the real gateway: a registered recipient reaches a subject's
//! data only under the subject's live provision consent for that recipient, purpose and
//! category (R-AZ-4), only while its compliance confirmation holds (R-AZ-8), and every release
//! is recorded durably before the response leaves — none is released when that record cannot
//! be written (R-LOG-3). The subject lists the records at `/.phr/provisions`.

mod support;

use std::collections::HashSet;

use rustls::version::TLS13;
use serde_json::{json, Value};
use support::issuer::*;
use support::*;

/// The policy's routes, purposes and recipients; `{recent}` is a confirmation date 30 days ago.
const EXTRA: &str = r#"
[[routes]]
id = "observations"
methods = ["GET"]
path = "/fhir/Observation"
upstream = "backend"
category = "checkup"
subject = "query:patient"
purposes = ["treatment", "self-management"]

[[routes]]
id = "observation-in"
methods = ["POST", "DELETE"]
path = "/fhir/Observation/{id}"
upstream = "backend"
category = "checkup"
subject = "path:id"
purposes = ["treatment"]

[[recipients]]
id = "sakura-clinic"
name = "さくら内科クリニック"
clients = ["clinic-app"]
compliance_confirmed = {recent}
recheck_days = 365

[[recipients]]
id = "lapsed-insurer"
name = "Lapsed Insurance"
clients = ["insurer-app"]
compliance_confirmed = 2020-01-01
recheck_days = 365

[[recipients]]
id = "boston-lab"
name = "Boston Lab"
clients = ["lab-app"]
country = "US"
compliance_confirmed = {recent}
recheck_days = 365
"#;

struct Setup {
    dir: tempfile::TempDir,
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
    key: TestKey,
}

fn policy_text(pki: &TestPki, port: u16, upstream: u16, audit: &str) -> String {
    let recent = (time::OffsetDateTime::now_utc().date() - time::Duration::days(30)).to_string();
    let extra = EXTRA.replace("{recent}", &recent)
        + PURPOSES_TOML
        + &issuer_toml("jwks_file = \"jwks.json\"");
    policy_with_audit(pki, port, upstream, "", audit, &extra)
}

async fn setup_with(dir: tempfile::TempDir, audit: &str) -> Setup {
    let pki = TestPki::new(dir.path(), "server");
    let key = TestKey::es256("provision-test-1");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
    let upstream = Upstream::start().await;
    let port = free_port();
    let text = policy_text(&pki, port, upstream.port, audit);
    let gateway = Gateway::start(dir.path(), &text, port);
    Setup {
        dir,
        pki,
        upstream,
        gateway,
        key,
    }
}

async fn setup() -> Setup {
    setup_with(tempfile::tempdir().unwrap(), "").await
}

impl Setup {
    /// The subject's own token (their PHR app).
    fn patient(&self, patient: &str) -> String {
        let mut claims = mfa_claims(&format!("user-{patient}"));
        claims["patient"] = json!(patient);
        self.key.sign(&claims)
    }

    /// A token issued to a recipient's application. It carries a `patient` claim on purpose:
    /// an EHR launch context does not make the recipient the subject.
    fn recipient(&self, client: &str, patient: &str) -> String {
        let mut claims = mfa_claims(&format!("staff-of-{client}"));
        claims["azp"] = json!(client);
        claims["patient"] = json!(patient);
        self.key.sign(&claims)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        purpose: Option<&str>,
        body: &str,
    ) -> Reply {
        let auth = format!("Bearer {token}");
        let config = client_config(&self.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
        let mut client = Client::open(self.gateway.port, config).await.unwrap();
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        if let Some(p) = purpose {
            headers.push(("phr-purpose", p));
        }
        client.send(method, path, &headers, body).await.unwrap()
    }

    async fn read_for(&self, token: &str, patient: &str, purpose: &str) -> Reply {
        let path = format!("/fhir/Observation?patient={patient}");
        self.call("GET", &path, token, Some(purpose), "").await
    }

    async fn grant(&self, token: &str, body: Value) -> Reply {
        self.call("POST", "/.phr/consents", token, None, &body.to_string())
            .await
    }

    fn provided(&self) -> Vec<Value> {
        phr_gateway::audit::segment::read_records(&self.dir.path().join("audit/state"))
            .unwrap()
            .into_iter()
            .filter(|e| e["event"] == "third_party_record")
            .collect()
    }
}

fn provision(recipient: &str, purpose: &str) -> Value {
    json!({"kind": "provision", "recipient": recipient, "purpose": purpose, "categories": ["checkup"]})
}

fn request_id(reply: &Reply) -> String {
    reply.headers["x-request-id"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_reads_only_under_a_live_provision_consent_and_every_release_is_recorded_r_az_4_r_log_3(
) {
    let s = setup().await;
    let alice = s.patient("p-1");
    let clinic = s.recipient("clinic-app", "p-1");

    // No consent yet: refused, though the clinic's token names p-1 as its patient.
    let refused = s.read_for(&clinic, "p-1", "treatment").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(
        refused.json()["reason"],
        "access.provision_consent_required"
    );
    assert!(refused.json()["detail"]
        .as_str()
        .unwrap()
        .contains("sakura-clinic"));
    assert!(s.upstream.requests().is_empty());

    // The subject consents to the clinic, for treatment, checkup data.
    let granted = s
        .grant(&alice, provision("sakura-clinic", "treatment"))
        .await;
    assert_eq!(granted.status, 201, "{granted:?}");
    let consent = granted.json()["consent"].as_str().unwrap().to_owned();

    let released = s.read_for(&clinic, "p-1", "treatment").await;
    assert_eq!(released.status, 200, "{released:?}");
    assert!(released.body.starts_with("upstream-ok"));

    // Outside the consent: another purpose, another subject, no purpose at all.
    let other_purpose = s.read_for(&clinic, "p-1", "self-management").await;
    assert_eq!(
        other_purpose.json()["reason"],
        "access.provision_consent_required"
    );
    let other_subject = s.read_for(&clinic, "p-2", "treatment").await;
    assert_eq!(
        other_subject.json()["reason"],
        "access.provision_consent_required"
    );
    let no_purpose = s
        .call("GET", "/fhir/Observation?patient=p-1", &clinic, None, "")
        .await;
    assert_eq!(no_purpose.json()["reason"], "access.purpose_not_allowed");
    // A client that is not a registered recipient is no third party: another subject's data is
    // simply not its own.
    let bob = s.patient("p-2");
    let not_own = s.read_for(&bob, "p-1", "treatment").await;
    assert_eq!(not_own.json()["reason"], "access.subject_mismatch");

    // One provision record per released response, matching its access record's request id.
    let provided = s.provided();
    assert_eq!(provided.len(), 1, "{provided:?}");
    assert_eq!(provided[0]["direction"], "provided");
    assert_eq!(provided[0]["subject"], "p-1");
    assert_eq!(provided[0]["recipient"], "sakura-clinic");
    assert_eq!(provided[0]["purpose"], "treatment");
    assert_eq!(provided[0]["categories"], json!(["checkup"]));
    assert_eq!(provided[0]["request_id"], request_id(&released).as_str());
    assert_eq!(provided[0]["status"], 200);

    // The subject sees the record; another subject sees none of it.
    let mine = s
        .call("GET", "/.phr/provisions", &alice, None, "")
        .await
        .json();
    assert_eq!(mine["provisions"].as_array().unwrap().len(), 1);
    assert_eq!(mine["provisions"][0]["recipient"], "sakura-clinic");
    let theirs = s
        .call("GET", "/.phr/provisions", &bob, None, "")
        .await
        .json();
    assert_eq!(theirs["provisions"], json!([]));
    // A recipient's token carries the patient context, yet never acts as the subject: neither
    // the subject's records nor their consents are within its reach.
    for path in ["/.phr/provisions", "/.phr/consents"] {
        let reply = s.call("GET", path, &clinic, None, "").await;
        assert_eq!(reply.status, 403, "{path}: {reply:?}");
        assert_eq!(reply.json()["reason"], "access.subject_mismatch");
        assert!(!reply.body.contains("p-1"));
    }
    let self_granted = s
        .grant(&clinic, provision("sakura-clinic", "self-management"))
        .await;
    assert_eq!(self_granted.status, 403);

    // Withdrawal: the very next request is refused, and nothing more is provided.
    let withdrawn = s
        .call(
            "POST",
            &format!("/.phr/consents/{consent}/withdraw"),
            &alice,
            None,
            "",
        )
        .await;
    assert_eq!(withdrawn.status, 200);
    let after = s.read_for(&clinic, "p-1", "treatment").await;
    assert_eq!(after.json()["reason"], "access.provision_consent_required");
    assert_eq!(s.provided().len(), 1);
    assert_eq!(s.upstream.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn data_a_recipient_sends_in_needs_acquisition_consent_and_is_recorded_as_received_r_log_3() {
    let s = setup().await;
    let alice = s.patient("p-1");
    let clinic = s.recipient("clinic-app", "p-1");
    let send = || {
        s.call(
            "POST",
            "/fhir/Observation/p-1",
            &clinic,
            Some("treatment"),
            "{}",
        )
    };
    assert_eq!(send().await.json()["reason"], "access.consent_required");
    let acquisition =
        json!({"kind": "acquisition", "purpose": "treatment", "categories": ["checkup"]});
    assert_eq!(s.grant(&alice, acquisition).await.status, 201);
    let received = send().await;
    assert_eq!(received.status, 200, "{received:?}");
    // A recipient never deletes a subject's data.
    let delete = s
        .call(
            "DELETE",
            "/fhir/Observation/p-1",
            &clinic,
            Some("treatment"),
            "",
        )
        .await;
    assert_eq!(delete.json()["reason"], "access.subject_mismatch");
    let records = s.provided();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["direction"], "received");
    assert_eq!(records[0]["request_id"], request_id(&received).as_str());
    let mine = s
        .call("GET", "/.phr/provisions", &alice, None, "")
        .await
        .json();
    assert_eq!(mine["provisions"][0]["direction"], "received");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_compliance_confirmation_blocks_provision_r_az_8() {
    let s = setup().await;
    let alice = s.patient("p-1");
    let insurer = s.recipient("insurer-app", "p-1");
    let granted = s
        .grant(&alice, provision("lapsed-insurer", "treatment"))
        .await;
    assert_eq!(granted.status, 201, "{granted:?}");
    let refused = s.read_for(&insurer, "p-1", "treatment").await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["reason"], "access.recipient_unconfirmed");
    assert!(refused.json()["detail"]
        .as_str()
        .unwrap()
        .contains("2020-12-31")); // 2020 was a leap year
    assert!(s.upstream.requests().is_empty());
    assert!(s.provided().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_abroad_needs_a_consent_naming_its_country_r_az_4() {
    let s = setup().await;
    let alice = s.patient("p-1");
    let lab = s.recipient("lab-app", "p-1");
    let mut body = provision("boston-lab", "treatment");
    for country in [None, Some("JP"), Some("GB")] {
        if let Some(c) = country {
            body["country"] = json!(c);
        }
        let refused = s.grant(&alice, body.clone()).await;
        assert_eq!(refused.status, 400, "{country:?}: {refused:?}");
        assert_eq!(refused.json()["reason"], "consent.invalid_request");
    }
    // Other malformed grants: an unknown recipient, public data, a recipient on an
    // acquisition consent.
    for bad in [
        provision("nobody", "treatment"),
        json!({"kind": "provision", "recipient": "sakura-clinic", "purpose": "treatment", "categories": ["public"]}),
        json!({"kind": "acquisition", "recipient": "sakura-clinic", "purpose": "treatment", "categories": ["checkup"]}),
    ] {
        let refused = s.grant(&alice, bad.clone()).await;
        assert_eq!(refused.status, 400, "{bad}: {refused:?}");
    }
    assert_eq!(
        s.read_for(&lab, "p-1", "treatment").await.json()["reason"],
        "access.provision_consent_required"
    );
    body["country"] = json!("us");
    let granted = s.grant(&alice, body).await;
    assert_eq!(granted.status, 201, "{granted:?}");
    let list = s
        .call("GET", "/.phr/consents", &alice, None, "")
        .await
        .json();
    assert_eq!(list["current"][0]["country"], "US");
    assert_eq!(s.read_for(&lab, "p-1", "treatment").await.status, 200);
    assert_eq!(s.provided().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn consents_and_provision_records_survive_a_restart() {
    let mut s = setup().await;
    let alice = s.patient("p-1");
    let clinic = s.recipient("clinic-app", "p-1");
    assert_eq!(
        s.grant(&alice, provision("sakura-clinic", "treatment"))
            .await
            .status,
        201
    );
    let released = s.read_for(&clinic, "p-1", "treatment").await;
    assert_eq!(released.status, 200);

    s.gateway.stop_with(nix::sys::signal::Signal::SIGTERM);
    let text = std::fs::read_to_string(&s.gateway.policy_path).unwrap();
    s.gateway = Gateway::start(s.dir.path(), &text, s.gateway.port);
    assert_eq!(s.read_for(&clinic, "p-1", "treatment").await.status, 200);
    let mine = s
        .call("GET", "/.phr/provisions", &alice, None, "")
        .await
        .json();
    let ids: Vec<&str> = mine["provisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{mine}");
    assert_eq!(ids[0], request_id(&released));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_data_is_released_when_its_provision_record_cannot_be_written_r_log_3() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("audit"), "1m") else {
        return;
    };
    // `degrade`: ordinary requests go on without their access records; a provision never does.
    let s = setup_with(dir, "on_audit_failure = \"degrade\"\nsync_interval_ms = 1").await;
    let alice = s.patient("p-1");
    let clinic = s.recipient("clinic-app", "p-1");
    assert_eq!(
        s.grant(&alice, provision("sakura-clinic", "treatment"))
            .await
            .status,
        201
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let filler = disk.fill();

    let mut released = Vec::new();
    let mut withheld = 0;
    for _ in 0..40 {
        let reply = s.read_for(&clinic, "p-1", "treatment").await;
        match reply.status {
            200 => released.push(request_id(&reply)),
            503 => {
                assert_eq!(reply.json()["reason"], "audit.unavailable", "{reply:?}");
                assert!(!reply.body.contains("upstream-ok"), "{reply:?}");
                withheld += 1;
            }
            other => panic!("unexpected {other}: {reply:?}"),
        }
        if withheld >= 3 {
            break;
        }
    }
    assert!(withheld >= 3, "no provision was withheld: {released:?}");
    // Ordinary traffic is still served in degrade mode: only the provision fails closed.
    let config = client_config(&s.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
    assert_eq!(
        get(s.gateway.port, config, "/anon/x", &[])
            .await
            .unwrap()
            .status,
        200
    );

    // Every response that was released has its durable provision record.
    std::fs::remove_file(filler).unwrap();
    let recorded: HashSet<String> = s
        .provided()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap().to_owned())
        .collect();
    for id in &released {
        assert!(recorded.contains(id), "released without a record: {id}");
    }
}

#[test]
fn recipients_are_checked_when_the_policy_loads_r_az_8() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "server");
    let clinic = "[[recipients]]\nid = \"clinic\"\nname = \"Clinic\"\nclients = [\"clinic-app\"]\ncompliance_confirmed = 2026-04-01\nrecheck_days = 365\n";
    for (entry, bad_line, message) in [
        (
            "compliance_confirmed = 2026-04-01T09:00:00Z",
            "compliance_confirmed = 2026-04-01T09:00:00Z",
            "compliance_confirmed must be a date",
        ),
        (
            "clients = [\"clinic-app\"]",
            "clients = [\"clinic-app\"]",
            "already another recipient's",
        ),
        (
            "id = \"clinic\"",
            "id = \"clinic\"",
            "recipient id `clinic` must be unique",
        ),
    ] {
        // A second recipient that repeats the first's `entry`, otherwise valid.
        let second = "[[recipients]]\nid = \"other\"\nname = \"Other\"\nclients = [\"other-app\"]\ncompliance_confirmed = 2026-04-01\nrecheck_days = 30\n"
            .lines()
            .map(|l| {
                let key = entry.split(" = ").next().unwrap();
                if l.starts_with(&format!("{key} = ")) {
                    entry.to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let text = policy(&pki, 8443, 8081, "", &format!("\n{clinic}\n{second}\n"));
        let lines: Vec<&str> = text.lines().collect();
        let line = lines.iter().rposition(|l| *l == bad_line).unwrap() + 1;
        assert_policy_error(dir.path(), &text, line, message);
    }
}
