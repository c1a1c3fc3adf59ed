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
    },
    /// Print the JSON Schema of the policy file, for editors.
    Schema,
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
        } => run_demo(DemoOptions {
            state_dir,
            public: listen,
            redirect,
            backend,
        }),
        Command::Schema => print_schema(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("phr-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load the policy and install the TLS provider it asks for, before pingora exists: the
/// provider decides which TLS versions every listener and upstream connection can use.
fn open_policy(path: &Path) -> Result<Arc<PolicyStore>> {
    let store = PolicyStore::open(path)?;
    tls::provider::install(store.current().tls.allow_tls12)?;
    Ok(Arc::new(store))
}

fn run(policy: &Path) -> Result<ExitCode> {
    logging::init();
    let store = open_policy(policy)?;
    let gateway = server::build(store)?;
    gateway.server.run_forever()
}

fn run_demo(opts: DemoOptions) -> Result<ExitCode> {
    logging::init();
    let files = demo::prepare(&opts)?;
    let store = open_policy(&files.policy)?;
    let mut gateway = server::build(store)?;
    let mut backend = pingora::services::listening::Service::new(
        "demo backend".to_owned(),
        DemoBackend::default(),
    );
    backend.add_tcp(&opts.backend.to_string());
    gateway.server.add_service(backend);
    println!("{}", demo::instructions(&opts, &files));
    let _ = std::io::stdout().flush();
    gateway.server.run_forever()
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
    if s.tls.allow_tls12 {
        let _ = writeln!(out, "WARNING: tls.allow_tls12 = true: TLS 1.2 is accepted (ECDHE + AEAD suites only); R-TLS-1 asks for 1.3");
    }
    if let Some(r) = s.listeners.redirect {
        let _ = writeln!(out, "redirect listener {r} (308 to https only)");
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
            if r.anonymous { "ANONYMOUS" } else { "required" }
        );
    }
    out
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

fn print_schema() -> Result<ExitCode> {
    println!("{}", policy::json_schema());
    Ok(ExitCode::SUCCESS)
}
