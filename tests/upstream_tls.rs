#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! TLS and mutual TLS to the upstream (R-TLS-4): verified against the configured CA, with SNI
//! always set, and a client certificate when the policy names one.

mod support;

use rustls::version::TLS13;
use support::*;

struct Tls {
    _dir: tempfile::TempDir,
    pki: TestPki,
    upstream: Upstream,
    gateway: Gateway,
}

/// The gateway in front of a TLS upstream whose certificate `upstream_ca` signed. `ca_file`
/// names the CA the policy trusts; `mtls` makes the upstream require a client certificate
/// and (if `send_client_cert`) the policy present one.
async fn start(trust_right_ca: bool, mtls: bool, send_client_cert: bool) -> Tls {
    start_with_sni("backend.internal", trust_right_ca, mtls, send_client_cert).await
}

async fn start_with_sni(
    sni: &str,
    trust_right_ca: bool,
    mtls: bool,
    send_client_cert: bool,
) -> Tls {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "server");
    let upstream_ca = phr_gateway::pki::DevCa::new("upstream CA").expect("ca");
    let upstream_identity = upstream_ca
        .issue_server(&["backend.internal"])
        .expect("cert");
    let client_ca = phr_gateway::pki::DevCa::new("gateway client CA").expect("ca");
    let client_ca_der = rustls::pki_types::CertificateDer::from(client_ca.cert_der());
    let upstream = Upstream::start_with_tls(Some(upstream_tls(
        &upstream_identity,
        mtls.then_some(&client_ca_der),
    )))
    .await;

    let trusted = if trust_right_ca {
        upstream_ca.cert_pem()
    } else {
        phr_gateway::pki::DevCa::new("some other CA")
            .expect("ca")
            .cert_pem()
    };
    std::fs::write(dir.path().join("upstream-ca.crt"), trusted).expect("write");
    let mut settings = format!(
        "ca = \"{}\"\nsni = \"{sni}\"\n",
        dir.path().join("upstream-ca.crt").display()
    );
    if send_client_cert {
        let (cert, key) = client_ca
            .issue_client("phr-gateway")
            .expect("client cert")
            .write(dir.path(), "gateway-client")
            .expect("write");
        settings.push_str(&format!(
            "client_certificate = \"{}\"\nclient_key = \"{}\"\n",
            cert.display(),
            key.display()
        ));
    }
    let port = free_port();
    let text = policy(&pki, port, upstream.port, "", "").replace(
        &format!("url = \"http://127.0.0.1:{}\"", upstream.port),
        &format!("url = \"https://127.0.0.1:{}\"\n{settings}", upstream.port),
    );
    let gateway = Gateway::start(dir.path(), &text, port);
    Tls {
        _dir: dir,
        pki,
        upstream,
        gateway,
    }
}

impl Tls {
    /// One GET through the gateway, on a new TLS 1.3 connection.
    async fn fetch(&self, path: &str) -> Reply {
        let client = client_config(&self.pki.ca_der, &[&TLS13], &[b"http/1.1"]);
        get(self.gateway.port, client, path, &[])
            .await
            .expect("request")
    }

    /// The gateway answered 502 upstream.unavailable (hardened) and the upstream never got
    /// the request.
    async fn assert_refused_upstream(&self, path: &str, why: &str) {
        let reply = self.fetch(path).await;
        assert_eq!(reply.status, 502, "{why}: {reply:?}");
        assert_eq!(reply.json()["reason"], "upstream.unavailable", "{why}");
        assert_eq!(
            reply.headers["strict-transport-security"],
            "max-age=31536000; includeSubDomains"
        );
        assert!(self.upstream.requests().is_empty(), "{why}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_upstream_verified_against_configured_ca_r_tls_4() {
    let t = start(true, false, false).await;
    let reply = t.fetch("/anon/over-tls").await;
    assert_eq!(reply.status, 200, "{reply:?}\n{}", t.gateway.log());
    assert_eq!(reply.body, "upstream-ok /anon/over-tls 0");
    assert_eq!(t.upstream.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_upstream_with_untrusted_certificate_is_never_sent_the_request_r_tls_4() {
    let t = start(false, false, false).await;
    t.assert_refused_upstream("/anon/over-tls", "request sent to an unverified upstream")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_to_upstream_r_tls_4() {
    let t = start(true, true, true).await;
    let reply = t.fetch("/anon/mtls").await;
    assert_eq!(reply.status, 200, "{reply:?}\n{}", t.gateway.log());

    // Without the client certificate the upstream refuses the connection.
    let t = start(true, true, false).await;
    t.assert_refused_upstream(
        "/anon/mtls",
        "mTLS upstream served without a client certificate",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_certificate_for_another_name_is_refused_r_tls_4() {
    let t = start_with_sni("other.internal", true, false, false).await;
    t.assert_refused_upstream("/anon/x", "hostname was not verified")
        .await;
}

#[test]
fn empty_sni_is_a_policy_error_since_pingora_would_skip_verification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "server");
    let text = policy(&pki, 8443, 9000, "", "").replace(
        "url = \"http://127.0.0.1:9000\"",
        "url = \"https://127.0.0.1:9000\"\nsni = \"\"",
    );
    std::fs::write(dir.path().join("p.toml"), text).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
        .args(["check", "--policy"])
        .arg(dir.path().join("p.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sni must not be empty"));
}
