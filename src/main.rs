//! The `phr-gateway` command.

#![forbid(unsafe_code)]

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use phr_gateway::demo::{self, backend::DemoBackend, DemoOptions};
use phr_gateway::policy::{self, PolicyStore, Snapshot};
use phr_gateway::{explain, logging, server, tls};

/// mimalloc instead of glibc malloc: the proxy path allocates many small, short-lived buffers
/// (headers, body chunks); see docs/performance.md for the measured difference.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A security gateway for Personal Health Record backends.
#[derive(Parser)]
#[command(name = "phr-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a policy file. SIGHUP reloads the policy; SIGTERM drains and exits.
    Run {
        /// The policy file (TOML, see docs/policy.md).
        #[arg(long)]
        policy: PathBuf,
    },
    /// Validate a policy file and print its compiled route table. Exit 1 on any error.
    Check {
        /// The policy file.
        #[arg(long)]
        policy: PathBuf,
    },
    /// Say what the gateway would do with requests given as JSON lines, without sending them.
    Explain {
        /// The policy file.
        #[arg(long)]
        policy: PathBuf,
        /// JSON lines file (`-` for standard input): {"method", "path", "headers", "body"}.
        #[arg(long)]
        requests: PathBuf,
    },
    /// Run the gateway on embedded defaults with a sample FHIR backend, all on loopback.
    Demo {
        /// State folder for certificates and the written policy.
        #[arg(long, default_value = ".phr-demo")]
        state_dir: PathBuf,
        /// The gateway's TLS listener.
        #[arg(long, default_value = demo::DEFAULT_PUBLIC)]
        listen: SocketAddr,
        /// The plain listener that only redirects to https.
        #[arg(long, default_value = demo::DEFAULT_REDIRECT)]
        redirect: SocketAddr,
        /// The sample backend's listener.
        #[arg(long, default_value = demo::DEFAULT_BACKEND)]
        backend: SocketAddr,
        /// The admin listener (mTLS with the demo administrator's certificate).
        #[arg(long, default_value = demo::DEFAULT_ADMIN)]
        admin: SocketAddr,
    },
    /// Print the JSON Schema of the policy file, for editors.
    Schema,
    /// Check, export and prove the audit trail (docs/audit.md).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Input inspection tools (docs/inspect.md).
    Inspect {
        #[command(subcommand)]
        command: InspectCommand,
    },
    /// Say, per guideline requirement, whether the policy enforces it (R-CMP-1).
    Report {
        /// The policy file.
        #[arg(long)]
        policy: PathBuf,
        /// `md` (Japanese and English headings) or `json`.
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
    },
    /// Call the admin listener of a running gateway (docs/operations.md).
    Admin {
        #[command(flatten)]
        connection: AdminConnection,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(clap::Args)]
struct AdminConnection {
    /// The admin listener.
    #[arg(long, env = "PHR_ADMIN_URL", default_value = "https://127.0.0.1:9443")]
    url: String,
    /// PEM CA that signs the listener's certificate (default: the system's roots).
    #[arg(long, env = "PHR_ADMIN_CA")]
    ca: Option<PathBuf>,
    /// The administrator's client certificate chain (PEM).
    #[arg(long, env = "PHR_ADMIN_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "PHR_ADMIN_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// A file holding an admin token (instead of a client certificate).
    #[arg(long, env = "PHR_ADMIN_TOKEN_FILE", conflicts_with = "cert")]
    token_file: Option<PathBuf>,
    /// The name to check in the listener's certificate (default: the URL's host).
    #[arg(long)]
    server_name: Option<String>,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Policy, certificate, audit, JWKS, mode.
    Status,
    /// Reload the policy file.
    Reload,
    /// Emergency stop: every user route answers 503 with Retry-After.
    Stop {
        /// Seconds to send as Retry-After.
        #[arg(long, default_value_t = 300)]
        retry_after: u64,
    },
    /// Read-only mode: only GET and HEAD pass.
    ReadOnly {
        /// Seconds to send as Retry-After.
        #[arg(long, default_value_t = 300)]
        retry_after: u64,
    },
    /// Back to normal service.
    Resume,
    /// Stop the use of a subject's data (R-AZ-7).
    SubjectStop {
        /// The subject (`sub`).
        subject: String,
    },
    /// Lift a subject stop.
    SubjectResume {
        /// The subject (`sub`).
        subject: String,
    },
    /// Revoke a session, every session of a subject, or a token.
    Revoke {
        /// `<issuer id>|<sid>`.
        #[arg(long, group = "target")]
        session: Option<String>,
        /// A subject: all their current sessions.
        #[arg(long, group = "target")]
        subject: Option<String>,
        /// A token id (`jti`).
        #[arg(long, group = "target")]
        token_id: Option<String>,
    },
    /// The Prometheus metrics.
    Metrics,
    /// The compliance report of the running policy.
    Report {
        /// `md` or `json`.
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
    },
    /// The health probes (no credential needed).
    Health,
}

#[derive(Subcommand)]
enum InspectCommand {
    /// Run corpora of request cases (JSON lines, ../shared/corpora/README.md's format) through
    /// the inspection the proxy runs, with the default settings a new operator gets; print
    /// true/false positives and negatives per class and the throughput.
    Eval {
        /// `md` (a table) or `json` (`{"total": {...}, "classes": {...}, "mb_per_s": ...,
        /// "json_body_mb_per_s": ..., "json_body_warm_mb_per_s": ...}`: JSON bodies met by
        /// a gateway just started, and again once its automata are warm).
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
        /// Also list (up to 5,000 of each) the missed attacks, and the refused legitimate cases
        /// with the rule that refused each.
        #[arg(long)]
        show_misses: bool,
        /// Inspect each case with the settings of the route it matches in this policy (mode,
        /// exclusions, neutralised fields, files) and the policy's limits; without it, the
        /// defaults a new operator's route gets.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The corpus files.
        #[arg(required = true)]
        corpora: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify a store directory or an export file: every chain link, every checkpoint signature
    /// and root. Prints every finding with its location; exit 1 on any.
    Verify {
        /// The store directory (the policy's `audit.dir`) or an export file.
        path: PathBuf,
        /// The checkpoint verifier key to trust (the `.pub` file beside the signing key). Without
        /// it the key the store or export carries is used, which proves nothing against whoever
        /// could rewrite both.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Check a proof printed by `audit proof` instead (PATH is then the store, for its key).
        #[arg(long)]
        proof: Option<PathBuf>,
    },
    /// Write a self-contained, verifiable export of the records in a time window (R-OPS-3).
    Export {
        /// The store directory.
        dir: PathBuf,
        /// Start of the window (RFC 3339, e.g. 2026-11-25T00:00:00Z), inclusive.
        #[arg(long)]
        since: String,
        /// End of the window (RFC 3339), exclusive.
        #[arg(long)]
        until: String,
        /// The export file to write.
        #[arg(long)]
        out: PathBuf,
        /// The verifier key (default: the store's copy).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Print an inclusion proof of one record, or a consistency proof from an earlier size,
    /// against the latest checkpoint (JSON, for `audit verify --proof`).
    Proof {
        /// The store directory.
        dir: PathBuf,
        /// The log: access or state.
        #[arg(long, default_value = "access")]
        log: String,
        /// The record to prove included.
        #[arg(
            long,
            conflicts_with = "consistency",
            required_unless_present = "consistency"
        )]
        seq: Option<u64>,
        /// Prove the log of this earlier size is a prefix of the latest checkpoint's.
        #[arg(long)]
        consistency: Option<u64>,
        /// The verifier key (default: the store's copy).
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { policy } => run(&policy),
        Command::Check { policy } => check(&policy),
        Command::Explain { policy, requests } => explain(&policy, &requests),
        Command::Demo {
            state_dir,
            listen,
            redirect,
            backend,
            admin,
        } => run_demo(DemoOptions {
            state_dir,
            public: listen,
            redirect,
            backend,
            admin,
        }),
        Command::Schema => print_schema(),
        Command::Audit { command } => audit(command),
        Command::Inspect {
            command:
                InspectCommand::Eval {
                    format,
                    show_misses,
                    policy,
                    corpora,
                },
        } => inspect_eval(&corpora, &format, show_misses, policy.as_deref()),
        Command::Report { policy, format } => report(&policy, &format),
        Command::Admin {
            connection,
            command,
        } => admin(connection, command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("phr-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `phr-gateway inspect eval`.
fn inspect_eval(
    corpora: &[PathBuf],
    format: &str,
    show_misses: bool,
    policy: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let snapshot = policy.map(policy::load).transpose()?;
    let mut readers: Vec<Box<dyn std::io::BufRead>> = Vec::new();
    for path in corpora {
        let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        readers.push(Box::new(std::io::BufReader::new(file)));
    }
    let report = phr_gateway::inspect::eval::run(&mut readers, snapshot.as_ref())
        .context("reading the corpora")?;
    if format == "json" {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", phr_gateway::inspect::eval::table(&report));
    }
    if show_misses {
        for line in &report.examples {
            eprintln!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Load the policy and install the TLS provider it asks for, before pingora exists: the
/// provider decides which TLS versions every listener and upstream connection can use.
fn open_policy(path: &Path) -> Result<Arc<PolicyStore>> {
    let store = PolicyStore::open(path)?;
    tls::provider::install(store.current().tls.allow_tls12)?;
    Ok(Arc::new(store))
}

fn report(policy: &Path, format: &str) -> Result<ExitCode> {
    let snapshot = policy::load(policy)?;
    let report = phr_gateway::report::build(&snapshot, None);
    let mut out = std::io::stdout().lock();
    if format == "json" {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(report.to_markdown().as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn admin(connection: AdminConnection, command: AdminCommand) -> Result<ExitCode> {
    use http::Method;
    use serde_json::json;
    let token = match &connection.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let client = phr_gateway::admin::client::AdminClient::new(
        &connection.url,
        connection.ca.as_deref(),
        connection.cert.as_deref().zip(connection.key.as_deref()),
        token,
        connection.server_name.as_deref(),
    )?;
    let mode =
        |mode: &str, retry_after: u64| Some(json!({"mode": mode, "retry_after_secs": retry_after}));
    let calls: Vec<(Method, String, Option<serde_json::Value>)> = match command {
        AdminCommand::Status => vec![(Method::GET, "/status".into(), None)],
        AdminCommand::Reload => vec![(Method::POST, "/reload".into(), None)],
        AdminCommand::Stop { retry_after } => {
            vec![(Method::POST, "/mode".into(), mode("stopped", retry_after))]
        }
        AdminCommand::ReadOnly { retry_after } => {
            vec![(Method::POST, "/mode".into(), mode("read-only", retry_after))]
        }
        AdminCommand::Resume => vec![(Method::POST, "/mode".into(), mode("normal", 0))],
        AdminCommand::SubjectStop { subject } => vec![(
            Method::POST,
            "/subjects/stop".into(),
            Some(json!({ "subject": subject })),
        )],
        AdminCommand::SubjectResume { subject } => vec![(
            Method::POST,
            "/subjects/resume".into(),
            Some(json!({ "subject": subject })),
        )],
        AdminCommand::Revoke {
            session,
            subject,
            token_id,
        } => {
            let body = match (session, subject, token_id) {
                (Some(s), _, _) => json!({ "session": s }),
                (_, Some(s), _) => json!({ "subject": s }),
                (_, _, Some(t)) => json!({ "token_id": t }),
                _ => anyhow::bail!("give --session, --subject or --token-id"),
            };
            vec![(Method::POST, "/revoke".into(), Some(body))]
        }
        AdminCommand::Metrics => vec![(Method::GET, "/metrics".into(), None)],
        AdminCommand::Report { format } => {
            let path = if format == "md" {
                "/report?format=md"
            } else {
                "/report"
            };
            vec![(Method::GET, path.into(), None)]
        }
        AdminCommand::Health => vec![
            (Method::GET, "/healthz".into(), None),
            (Method::GET, "/readyz".into(), None),
        ],
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut ok = true;
    for (method, path, body) in calls {
        let (status, text) = runtime.block_on(client.call(method, &path, body))?;
        let mut out = std::io::stdout().lock();
        write!(out, "{text}")?;
        if !text.ends_with('\n') {
            writeln!(out)?;
        }
        if !status.is_success() {
            eprintln!("phr-gateway: the admin listener answered {status}");
            ok = false;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run(policy: &Path) -> Result<ExitCode> {
    logging::init();
    let store = open_policy(policy)?;
    let gateway = server::build(store)?;
    Ok(gateway.run())
}

fn run_demo(opts: DemoOptions) -> Result<ExitCode> {
    logging::init();
    let files = demo::prepare(&opts)?;
    let store = open_policy(&files.policy)?;
    let mut gateway = server::build(store)?;
    let mut backend = pingora::services::listening::Service::new(
        "demo backend".to_owned(),
        DemoBackend::with_jwks(&files.jwks),
    );
    backend.add_tcp(&opts.backend.to_string());
    gateway.server.add_service(backend);
    println!("{}", demo::instructions(&opts, &files));
    let _ = std::io::stdout().flush();
    Ok(gateway.run())
}

fn check(path: &Path) -> Result<ExitCode> {
    let snapshot = match policy::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    print!("{}", describe(&snapshot));
    Ok(ExitCode::SUCCESS)
}

/// What `check` prints: the version, every setting that weakens a protection, the routes.
fn describe(s: &Snapshot) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "policy {} is valid ({})",
        s.source.display(),
        s.version
    );
    let _ = writeln!(
        out,
        "public listener {} (TLS 1.3{})",
        s.listeners.public,
        if s.tls.allow_tls12 {
            " and 1.2"
        } else {
            " only"
        }
    );
    let _ = match s.listeners.hosts.as_slice() {
        [] => writeln!(out, "hosts served: any (listeners.hosts is empty)"),
        names => writeln!(
            out,
            "hosts served: {} (any other: 421 route.host_not_served)",
            names.join(", ")
        ),
    };
    if s.tls.allow_tls12 {
        let _ = writeln!(out, "WARNING: tls.allow_tls12 = true: TLS 1.2 is accepted (ECDHE + AEAD suites only); R-TLS-1 asks for 1.3");
    }
    if let Some(r) = s.listeners.redirect {
        let _ = writeln!(out, "redirect listener {r} (308 to https only)");
    }
    let _ = writeln!(
        out,
        "audit store {} (origin {}, checkpoint every {} records or {} s, access records {}, on failure {}{})",
        s.audit.dir.display(),
        s.audit.origin,
        s.audit.checkpoint_every,
        s.audit.checkpoint_interval.as_secs(),
        match s.audit.access_durability {
            phr_gateway::audit::Durability::Batched => "batched",
            phr_gateway::audit::Durability::Durable => "durable",
        },
        match s.audit.on_failure {
            phr_gateway::audit::OnFailure::FailClosed => "fail_closed",
            phr_gateway::audit::OnFailure::Degrade => "degrade",
        },
        if s.pseudonymiser.is_some() { ", subjects pseudonymised" } else { "" }
    );
    for i in &s.identity.issuers {
        let algorithms: Vec<&str> = i
            .algorithms
            .iter()
            .map(|a| phr_gateway::identity::keys::algorithm_name(*a))
            .collect();
        let source = match &i.keys.source {
            phr_gateway::identity::jwks::JwksSource::Url(u) => format!("{} (refreshed)", u.url),
            phr_gateway::identity::jwks::JwksSource::File(p) => p.display().to_string(),
            phr_gateway::identity::jwks::JwksSource::Fixed => "in memory".into(),
        };
        let _ = writeln!(
            out,
            "issuer {} = {} (aud {}; {}; {} keys from {})",
            i.id,
            i.issuer,
            i.audiences.join(","),
            algorithms.join(","),
            i.keys.current().len(),
            source
        );
    }
    if s.identity.issuers.is_empty() {
        let _ = writeln!(
            out,
            "no token issuer: every route that is not anonymous is refused (identity.missing)"
        );
    }
    if s.identity.sessionless_tokens {
        let _ = writeln!(out, "WARNING: identity.sessionless_tokens = true: a token with neither sid nor jti escapes the idle lock and logout (R-AUTH-3)");
    }
    if s.identity.mfa.accept_mfa_amr {
        let _ = writeln!(out, "WARNING: identity.accept_mfa_amr = true: amr \"mfa\" is believed without the factors (R-AUTH-2)");
    }
    for r in s.routes.routes().iter().filter(|r| !r.anonymous && !r.mfa) {
        let _ = writeln!(
            out,
            "WARNING: route {} accepts a single authentication factor (mfa = false; R-AUTH-2)",
            r.id
        );
    }
    for r in s.routes.routes().iter().filter(|r| r.category.is_health()) {
        let unbound = r.access.subject.is_none() && r.access.fhir.is_none();
        if r.anonymous {
            let _ = writeln!(
                out,
                "WARNING: route {} serves {} data to anonymous callers (R-AZ-1)",
                r.id,
                r.category.as_str()
            );
        } else if unbound {
            let _ = writeln!(
                out,
                "WARNING: route {} serves {} data without binding whose it is: any caller the route admits reaches every subject's; declare `fhir` or `subject` (R-AZ-1)",
                r.id,
                r.category.as_str()
            );
        }
    }
    if s.audit.on_failure == phr_gateway::audit::OnFailure::Degrade {
        let _ = writeln!(out, "WARNING: audit.on_audit_failure = \"degrade\": requests are served without their records while the store cannot write (R-LOG-1)");
    }
    for u in &s.upstreams {
        let _ = writeln!(
            out,
            "upstream {} = {} ({})",
            u.name,
            u.url,
            if u.is_tls() {
                "TLS, verified"
            } else {
                "plain HTTP"
            }
        );
    }
    let _ = writeln!(
        out,
        "{} routes (anything else: 404 route.not_found)",
        s.routes.routes().len()
    );
    let _ = writeln!(
        out,
        "  {:<24} {:<22} {:<36} {:<14} {:<12} identity",
        "id", "methods", "path", "upstream", "category"
    );
    for r in s.routes.routes() {
        let methods: Vec<&str> = r.methods.iter().map(|m| m.as_str()).collect();
        let _ = writeln!(
            out,
            "  {:<24} {:<22} {:<36} {:<14} {:<12} {}",
            r.id,
            methods.join(","),
            r.pattern,
            s.upstreams[r.upstream].name,
            r.category.as_str(),
            identity_column(r)
        );
    }
    out
}

/// The route table's identity column: what a caller must show.
fn identity_column(r: &phr_gateway::route::Route) -> String {
    if r.anonymous {
        return "ANONYMOUS".into();
    }
    let mut parts = vec![if r.mfa {
        "token+MFA"
    } else {
        "token (single factor)"
    }
    .to_owned()];
    if let Some(age) = r.step_up.max_age_secs {
        parts.push(format!("sign-in <= {age}s"));
    }
    if !r.step_up.acr_values.is_empty() {
        parts.push(format!("acr {}", r.step_up.acr_values.join("|")));
    }
    parts.join(", ")
}

fn explain(policy: &Path, requests: &Path) -> Result<ExitCode> {
    let snapshot = match policy::load(policy) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let stdout = std::io::stdout().lock();
    let errors = if requests == Path::new("-") {
        explain::explain_lines(std::io::stdin().lock(), stdout, &snapshot)?
    } else {
        let file = std::fs::File::open(requests)
            .with_context(|| format!("cannot open {}", requests.display()))?;
        explain::explain_lines(BufReader::new(file), stdout, &snapshot)?
    };
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn audit(command: AuditCommand) -> Result<ExitCode> {
    use phr_gateway::audit::verify::{self, KeySource};
    use phr_gateway::audit::LogKind;
    match command {
        AuditCommand::Verify { path, key, proof } => {
            if let Some(proof_path) = proof {
                let (key, from_store) = verify::store_key(&path, key.as_deref())?;
                warn_unpinned(from_store.as_deref());
                let text = std::fs::read_to_string(&proof_path)
                    .with_context(|| format!("cannot read {}", proof_path.display()))?;
                let proof: verify::Proof = serde_json::from_str(&text).with_context(|| {
                    format!("{} is not a proof from `audit proof`", proof_path.display())
                })?;
                return Ok(match verify::verify_proof(&proof, &key) {
                    Ok(what) => {
                        println!("ok: {what}");
                        ExitCode::SUCCESS
                    }
                    Err(why) => {
                        println!("FAILED: {why}");
                        ExitCode::FAILURE
                    }
                });
            }
            let report = if path.is_dir() {
                let (key, from_store) = verify::store_key(&path, key.as_deref())?;
                warn_unpinned(from_store.as_deref());
                verify::verify_store(&path, &key)?
            } else {
                let source = match key {
                    Some(k) => KeySource::Pinned(verify::store_key(Path::new("."), Some(&k))?.0),
                    None => KeySource::FromInput,
                };
                verify::verify_export(&path, source)?
            };
            for (log, summary) in &report.logs {
                println!(
                    "{}: {} records, {} checkpoints verified, signed up to record {}",
                    log.name(),
                    summary.records,
                    summary.checkpoints_verified,
                    summary.covered
                );
            }
            for note in &report.notes {
                println!("note: {note}");
            }
            for finding in &report.findings {
                println!("FINDING: {finding}");
            }
            Ok(if report.is_clean() {
                println!("ok: no changes, gaps, insertions or reorderings found");
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Export {
            dir,
            since,
            until,
            out,
            key,
        } => {
            let (key, from_store) = verify::store_key(&dir, key.as_deref())?;
            warn_unpinned(from_store.as_deref());
            let since = record_time(&since).context("--since")?;
            let until = record_time(&until).context("--until")?;
            let summary = verify::export(&dir, &since, &until, &out, &key)?;
            for (log, first, count) in &summary.logs {
                println!("{}: {count} records from record {first}", log.name());
            }
            if summary.left_out > 0 {
                println!(
                    "note: {} records in the window are newer than the latest checkpoint and were left out; export again after the next checkpoint",
                    summary.left_out
                );
            }
            println!(
                "wrote {}; check it with `phr-gateway audit verify {} --key <verifier key>`",
                out.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Proof {
            dir,
            log,
            seq,
            consistency,
            key,
        } => {
            let log = LogKind::from_name(&log)
                .with_context(|| format!("--log must be access or state, not {log}"))?;
            let (key, _) = verify::store_key(&dir, key.as_deref())?;
            let proof = match (seq, consistency) {
                (Some(seq), _) => verify::inclusion_proof(&dir, log, seq, &key)?,
                (None, Some(old)) => verify::consistency_proof(&dir, log, old, &key)?,
                (None, None) => anyhow::bail!("give --seq or --consistency"),
            };
            println!("{}", serde_json::to_string_pretty(&proof)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn warn_unpinned(from_store: Option<&Path>) {
    if let Some(path) = from_store {
        eprintln!(
            "note: checking with the key in {} (the store's own copy); pass --key with a copy you keep elsewhere to trust nothing in the store",
            path.display()
        );
    }
}

/// An RFC 3339 time in the records' own format, so that windows compare as text.
fn record_time(text: &str) -> Result<String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time like 2026-11-25T09:00:00Z"))?;
    Ok(phr_gateway::audit::record::format_time(t))
}

fn print_schema() -> Result<ExitCode> {
    println!("{}", policy::json_schema());
    Ok(ExitCode::SUCCESS)
}
