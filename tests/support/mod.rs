//! Test harness: the real `phr-gateway` binary on a loopback port, a real upstream (hyper,
//! optionally behind TLS), real rustls clients, and certificates made at test time.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use phr_gateway::pki::{DevCa, Issued};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub mod issuer;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The gateway in front of a recording upstream, with `extra` (routes) appended to the test
/// policy: the set-up the inspection tests share.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub upstream: Upstream,
    pub gateway: Gateway,
}

impl Harness {
    pub async fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = TestPki::new(dir.path(), "server");
        let upstream = Upstream::start().await;
        let port = free_port();
        let gateway = Gateway::start(
            dir.path(),
            &policy(&pki, port, upstream.port, "", extra),
            port,
        );
        Harness {
            dir,
            pki,
            upstream,
            gateway,
        }
    }

    /// A new HTTP/1.1 connection over TLS 1.3.
    pub async fn client(&self) -> Client {
        let config = client_config(&self.pki.ca_der, &[&rustls::version::TLS13], &[b"http/1.1"]);
        // A reset during the handshake was seen twice in some hundreds of loaded runs (CI
        // once), always on a gateway's first connections, with no cause found in the gateway
        // (docs/decisions.md). One retry, reported on stderr with the gateway's log, keeps the
        // suite's verdicts about the gateway rather than about the loopback; a second failure,
        // or any other error, fails the test with the log.
        match Client::open(self.gateway.port, Arc::clone(&config)).await {
            Ok(client) => return client,
            Err(e) if is_reset(&e) => {
                eprintln!(
                    "connect reset, retrying once: {e:?}\ngateway log:\n{}",
                    self.gateway.log()
                );
            }
            Err(e) => panic!("connect: {e:?}\ngateway log:\n{}", self.gateway.log()),
        }
        match Client::open(self.gateway.port, config).await {
            Ok(client) => client,
            Err(e) => panic!(
                "connect (second try): {e:?}\ngateway log:\n{}",
                self.gateway.log()
            ),
        }
    }

    /// One request on a new connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        self.client()
            .await
            .send(method, path, headers, body)
            .await
            .expect("request")
    }

    /// The access record of `reply`. Records are written before the answer; the batch may
    /// still be in the writer's buffer for a moment on a slow machine.
    pub fn record(&self, reply: &Reply) -> serde_json::Value {
        let id = reply.headers["x-request-id"].to_str().expect("request id");
        for _ in 0..50 {
            let records =
                phr_gateway::audit::segment::read_records(&self.dir.path().join("audit/access"))
                    .expect("records");
            if let Some(r) = records.into_iter().find(|r| r["request_id"] == id) {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no record for {id}");
    }

    /// The access records with `reason`, once there are `expected` of them (or after 5 s).
    pub fn records_with_reason(&self, reason: &str, expected: usize) -> Vec<serde_json::Value> {
        let mut found = Vec::new();
        for _ in 0..50 {
            found =
                phr_gateway::audit::segment::read_records(&self.dir.path().join("audit/access"))
                    .expect("records")
                    .into_iter()
                    .filter(|r| r["reason"] == reason)
                    .collect();
            if found.len() >= expected {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        found
    }

    /// What the upstream received for `path`.
    pub fn forwarded(&self, path: &str) -> Seen {
        self.upstream
            .requests()
            .into_iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("{path} did not reach the upstream"))
    }
}

/// Whether `e` is a connection reset by the peer.
fn is_reset(e: &BoxError) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)
}

/// The rule ids an access record names.
pub fn rules(record: &serde_json::Value) -> Vec<&str> {
    record["rules"]
        .as_array()
        .map(|rules| rules.iter().filter_map(|r| r.as_str()).collect())
        .unwrap_or_default()
}

/// A free loopback port (bound, then released for the gateway to take). Taken below Linux's
/// ephemeral range (32768-60999), where the kernel picks `bind(0)` ports and the source ports
/// of outgoing connections: a port `bind(0)` had just released could be handed to a parallel
/// test, or to a connection, before the gateway took it (seen once in CI: a restarted
/// gateway found its port taken and a test talked to another test's gateway). Each port is
/// handed out once per test process; the start differs by process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 97) as u16 * 120;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = FIRST + (start + n) % COUNT;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT);
}

/// A CA and a server certificate for localhost, written into `dir`.
pub struct TestPki {
    pub ca: DevCa,
    pub ca_der: CertificateDer<'static>,
    pub ca_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestPki {
    pub fn new(dir: &Path, name: &str) -> Self {
        let ca = DevCa::new(&format!("{name} test CA")).expect("ca");
        let (cert_path, key_path) = ca
            .issue_server(&["localhost", "127.0.0.1"])
            .expect("server cert")
            .write(dir, name)
            .expect("write");
        let ca_path = dir.join(format!("{name}-ca.crt"));
        std::fs::write(&ca_path, ca.cert_pem()).expect("write ca");
        let ca_der = CertificateDer::from(ca.cert_der());
        TestPki {
            ca,
            ca_der,
            ca_path,
            cert_path,
            key_path,
        }
    }
}

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A real HTTP/1.1 upstream on loopback that records what reaches it.
pub struct Upstream {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests for `/anon/slow` that have arrived (each is answered 1.5 s later): a test
    /// knows a request is in flight by this, not by sleeping for a guessed time.
    pub slow_arrived: Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Plain HTTP.
    pub async fn start() -> Self {
        Self::start_with_tls(None).await
    }

    /// With `tls`, the upstream speaks TLS with this server config.
    pub async fn start_with_tls(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = Arc::clone(&seen);
        let acceptor = tls.map(TlsAcceptor::from);
        let connections: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let accepted = Arc::clone(&connections);
        let slow_arrived: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let slow = Arc::clone(&slow_arrived);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let record = Arc::clone(&record);
                let slow = Arc::clone(&slow);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let record = Arc::clone(&record);
                        let slow = Arc::clone(&slow);
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            if parts.uri.path() == "/anon/slow" {
                                slow.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(1500)).await;
                            }
                            if let Ok(mut s) = record.lock() {
                                s.push(Seen {
                                    method: parts.method.to_string(),
                                    path: parts.uri.to_string(),
                                    headers: parts.headers.clone(),
                                    body: body.clone(),
                                });
                            }
                            let reply = format!("upstream-ok {} {}", parts.uri.path(), body.len());
                            let mut response = hyper::Response::builder()
                                .header("server", "secret-backend/1.0")
                                .header("x-powered-by", "php/5");
                            // A test names the `Location` it wants answered; `{own}` and
                            // `{OWN}` stand for this upstream's origin (spelled out, it is
                            // an internal URL inspection refuses in a request).
                            if let Some(location) = parts.headers.get("x-test-location") {
                                let location = location
                                    .to_str()
                                    .unwrap_or_default()
                                    .replace("{own}", &format!("http://127.0.0.1:{port}"))
                                    .replace("{OWN}", &format!("HTTP://127.0.0.1:{port}"));
                                response = response
                                    .header("location", &location)
                                    .header("content-location", &location)
                                    .header("link", format!("<{location}>; rel=\"next\""));
                            }
                            // Each `x-test-set-cookie` is answered as a `Set-Cookie`.
                            for cookie in parts.headers.get_all("x-test-set-cookie") {
                                response = response.header("set-cookie", cookie);
                            }
                            Ok::<_, hyper::Error>(
                                response
                                    .body(Full::new(Bytes::from(reply)))
                                    .expect("response"),
                            )
                        }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Upstream {
            port,
            seen,
            connections,
            slow_arrived,
        }
    }
}

/// A TLS server config for a test upstream; with `client_ca`, client certificates are required.
pub fn upstream_tls(
    identity: &Issued,
    client_ca: Option<&CertificateDer<'static>>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        rustls::pki_types::pem::PemObject::pem_slice_iter(identity.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("certs");
    let key = rustls::pki_types::pem::PemObject::from_pem_slice(identity.key_pem.as_bytes())
        .expect("key");
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone()).expect("root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(builder.with_single_cert(certs, key).expect("server config"))
}

/// The gateway binary, running with a policy file, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub policy_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Gateway {
    /// Write `policy` to `dir/policy.toml` and start `phr-gateway run` on it; waits until the
    /// TLS port accepts connections.
    pub fn start(dir: &Path, policy: &str, port: u16) -> Self {
        let mut gw = Self::spawn(dir, policy, port);
        gw.wait_ready(port);
        gw
    }

    /// [`Gateway::start`] without the wait: the process may not listen yet.
    pub fn spawn(dir: &Path, policy: &str, port: u16) -> Self {
        let policy_path = dir.join("policy.toml");
        std::fs::write(&policy_path, policy).expect("write policy");
        let stderr_path = dir.join("gateway.log");
        let child = Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
            .args(["run", "--policy"])
            .arg(&policy_path)
            .env("PHR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("log file"))
            .spawn()
            .expect("spawn gateway");
        Gateway {
            child,
            port,
            dir: dir.to_path_buf(),
            policy_path,
            stderr_path,
        }
    }

    pub fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gateway exited early ({status}): {}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Another process's listener on the same port would answer too: the gateway
                // must still be running once something does.
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!(
                        "gateway exited ({status}) though {port} answers: {}",
                        self.log()
                    );
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not listen on {port}: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("kill");
    }

    /// Send `signal` (SIGTERM: drain; SIGINT: quick) and wait up to 15 s for the exit.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) {
        self.signal(signal);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not stop after {signal}: {}", self.log());
    }

    /// Send SIGHUP and wait until the log shows the reload's outcome (ok or failed).
    pub fn reload(&self) {
        let before = self.log().matches("SIGHUP").count();
        self.signal(nix::sys::signal::Signal::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let log = self.log();
            if log.matches("SIGHUP").count() > before
                && (log.matches("policy reloaded").count()
                    + log.matches("policy reload failed").count())
                    > before
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no reload outcome in log: {}", self.log());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A rustls client config trusting `ca`, for the given versions and ALPN protocols.
pub fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Open a TLS connection to the gateway.
pub async fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> Result<TlsStream, BoxError> {
    connect_as(port, config, ServerName::try_from("localhost")?).await
}

/// [`connect`] naming the server `name`: a DNS name is sent as SNI, an address sends none.
pub async fn connect_as(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
) -> Result<TlsStream, BoxError> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    Ok(TlsConnector::from(config).connect(name, tcp).await?)
}

/// The TLS error inside an I/O error from a handshake, if that is what it was.
pub fn tls_error(e: &BoxError) -> Option<rustls::Error> {
    let io = e.downcast_ref::<std::io::Error>()?;
    io.get_ref()?.downcast_ref::<rustls::Error>().cloned()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// An HTTP client over one TLS connection (h2 if ALPN chose it, else HTTP/1.1).
pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Client {
    pub async fn open(port: u16, config: Arc<rustls::ClientConfig>) -> Result<Self, BoxError> {
        let tls = connect(port, config).await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Ok(Client::H2(sender))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            Ok(Client::H1(sender))
        }
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Reply, BoxError> {
        self.send_bytes(method, path, headers, body.as_bytes().to_vec())
            .await
    }

    pub async fn send_bytes(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, BoxError> {
        let h2 = matches!(self, Client::H2(_));
        // Over h2 the authority goes in `:authority`: `localhost` unless `path` names its own.
        // A `CONNECT`'s target is an authority (`host:port`), sent as given.
        let uri = if method == "CONNECT" || (h2 && path.starts_with("https://")) {
            path.to_owned()
        } else if h2 {
            format!("https://localhost{path}")
        } else {
            path.to_owned()
        };
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        if !h2 {
            builder = builder.header("host", "localhost");
        }
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        let request = builder.body(Full::new(Bytes::from(body)))?;
        // Wait until the connection can take the next request: after a response, hyper's
        // connection task may not have finished with it yet. A closed connection errors here.
        let response = match self {
            Client::H1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Client::H2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// One request on a new connection.
pub async fn get(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, BoxError> {
    Client::open(port, config)
        .await?
        .send("GET", path, headers, "")
        .await
}

/// Write raw bytes over TLS 1.3 and read until the server closes (or 5 s pass).
pub async fn raw_exchange(
    port: u16,
    ca: &CertificateDer<'static>,
    bytes: &[u8],
) -> Result<String, BoxError> {
    let mut tls = connect(
        port,
        client_config(ca, &[&rustls::version::TLS13], &[b"http/1.1"]),
    )
    .await?;
    tls.write_all(bytes).await?;
    tls.flush().await?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The purpose catalogue the access tests share (R-AZ-2): append it to a policy's extra text.
pub const PURPOSES_TOML: &str = r#"
[[purposes]]
id = "self-management"
ja = "本人による健康管理"
en = "The person's own health management"

[[purposes]]
id = "treatment"
ja = "診療"
en = "Medical treatment"
"#;

/// A policy with one plain upstream and a few routes; `extra` is appended (more routes,
/// upstream settings) and `tls_extra` goes into the [tls] table.
pub fn policy(
    pki: &TestPki,
    port: u16,
    upstream_port: u16,
    tls_extra: &str,
    extra: &str,
) -> String {
    policy_with_audit(pki, port, upstream_port, tls_extra, "", extra)
}

/// `text` (a [`policy`]) serving only `hosts` (`[listeners] hosts`, written as TOML strings).
pub fn with_hosts(text: &str, hosts: &[&str]) -> String {
    let list: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    let listed = text.replacen(
        "[listeners]\n",
        &format!("[listeners]\nhosts = [{}]\n", list.join(", ")),
        1,
    );
    assert_ne!(listed, text, "the policy has no [listeners] table");
    listed
}

/// [`policy`] with more `[audit]` keys. The store is `audit/` beside the policy file, its key
/// `audit-signing.key`.
pub fn policy_with_audit(
    pki: &TestPki,
    port: u16,
    upstream_port: u16,
    tls_extra: &str,
    audit_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[gateway]
node_id = "test"
worker_threads = 1
drain_secs = 2
shutdown_timeout_secs = 1

[listeners]
public = "127.0.0.1:{port}"

[tls]
certificate_chain = "{cert}"
private_key = "{key}"
{tls_extra}

[audit]
dir = "audit"
signing_key = "audit-signing.key"
{audit_extra}

[upstreams.backend]
url = "http://127.0.0.1:{upstream_port}"

[[routes]]
id = "anon"
methods = ["GET", "POST"]
path = "/anon/{{*rest}}"
upstream = "backend"
category = "public"
anonymous = true

[[routes]]
id = "patient-read"
methods = ["GET"]
path = "/fhir/Patient/{{id}}"
upstream = "backend"
category = "account"
{extra}
"#,
        cert = pki.cert_path.display(),
        key = pki.key_path.display(),
    )
}

/// A tmpfs mounted over the store, and unmounted however the test ends.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `None` (and a message) when this process may not mount: run as root to test this.
    pub fn mount(path: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status();
        match status {
            Ok(s) if s.success() => Some(SmallDisk(path.to_path_buf())),
            _ => {
                eprintln!(
                    "skipped: cannot mount a tmpfs at {} (needs root; CI runs as root)",
                    path.display()
                );
                None
            }
        }
    }

    /// Fill the disk: write a filler file until the write fails.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Run `phr-gateway check` on `text` (written to `dir/policy.toml`) and assert that it fails
/// naming `line` (1-based) of the file and saying `message`.
pub fn assert_policy_error(dir: &Path, text: &str, line: usize, message: &str) {
    std::fs::write(dir.join("policy.toml"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
        .args(["check", "--policy"])
        .arg(dir.join("policy.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {message}");
    assert!(stderr.contains(&format!("policy.toml:{line}:")), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
}

/// `phr-gateway explain` on `requests` (one JSON object each) with the policy at `policy`:
/// its answer line for each.
pub fn explain(policy: &Path, requests: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let (status, lines) = explain_text(policy, &input);
    assert_eq!(status, Some(0), "explain failed: {lines:?}");
    lines
}

/// `phr-gateway explain` on `input` as given (bad lines too): its exit status and its lines.
pub fn explain_text(policy: &Path, input: &str) -> (Option<i32>, Vec<serde_json::Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phr-gateway"))
        .args(["explain", "--policy"])
        .arg(policy)
        .args(["--requests", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn explain");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes())
        .expect("write requests");
    let out = child.wait_with_output().expect("explain");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an explanation is one JSON line"))
        .collect();
    (out.status.code(), lines)
}
