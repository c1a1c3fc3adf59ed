//! phr-gateway: a security gateway in front of Personal Health Record (PHR) backends.
//!
//! Requirement IDs (`R-TLS-1`, `R-AZ-1`, ...) refer to the guideline list in
//! `docs/requirements.md`. The modules follow the request's path through the gateway:
//!
//! | module | owns |
//! |---|---|
//! | [`policy`] | the policy file, its validation, the compiled snapshot, reload |
//! | [`tls`] | the TLS 1.3 provider, the reloading server certificate |
//! | [`protocol`] | framing checks before routing (request smuggling shapes) |
//! | [`net`] | the client's address (trusted proxies) and CIDR allow/deny rules |
//! | [`controls`] | run-time operator controls: emergency stop, read-only, subject stops |
//! | [`limits`] | rate limits per client, subject and route; connection limits and deadlines |
//! | [`route`] | the route table and default deny |
//! | [`identity`] | who is asking: bearer tokens, issuers' keys, MFA, step-up, sessions, lockout |
//! | [`access`] | what the caller may do: scopes (SMART on FHIR, derived on FHIR routes), roles, whose data it is, purposes, recipients |
//! | [`inspect`] | input inspection (無害化): normalisation, detectors, neutralising named fields, file disarm, the corpus evaluation |
//! | [`consent`] | the consent ledger: acquisition and provision consents, withdrawal, history, third-party records |
//! | [`pipeline`] | the request steps in order, shared by the proxy and `explain` |
//! | [`decision`] | `Decision`, reason codes, problem+json |
//! | [`forward`] | what the upstream receives |
//! | [`harden`] | headers on every response |
//! | [`headers`] | header editing over pingora's and plain header maps |
//! | [`upstream`] | backends and (m)TLS to them |
//! | [`audit`] | the access and state logs: hash chain, signed Merkle checkpoints, verify |
//! | [`proxy`] | the pingora glue |
//! | [`head_refusals`] | request heads pingora's parser refuses itself, recorded in the audit trail |
//! | [`server`] | listeners, reload on SIGHUP and certificate change |
//! | [`admin`] | the admin listener (mTLS or admin tokens), its endpoints and CLI client |
//! | [`report`] | the compliance report per requirement ID |
//! | [`redirect`] | the plain listener that only redirects |
//! | [`explain`] | dry runs of requests |
//! | [`demo`] | the embedded-defaults demo and its sample backend |
//! | [`pki`] | development certificates (rcgen) |
//! | [`logging`] | structured logs |
//! | [`metrics`] | the Prometheus registry, served by the admin listener's `/metrics` |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod admin;
pub mod audit;
pub mod consent;
pub mod controls;
pub mod decision;
pub mod demo;
pub mod explain;
pub mod forward;
pub mod harden;
pub mod head_refusals;
pub mod headers;
pub mod identity;
pub mod inspect;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod pki;
pub mod policy;
pub mod protocol;
pub mod proxy;
pub mod redirect;
pub mod report;
pub mod route;
pub mod server;
pub mod tls;
pub mod upstream;

#[cfg(test)]
mod tests {
    /// docs/architecture.md's module table is how a newcomer finds where a check lives: every
    /// module has a row (`| \`name\``), and every file under a module's folder is named in
    /// its row (`keys` or `identity/keys.rs`). Unit-test files are not modules of their own.
    #[test]
    fn every_module_has_a_row_in_docs_architecture() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("doc");
        let row = |module: &str| {
            doc.lines()
                .find(|l| l.starts_with(&format!("| `{module}`")))
                .unwrap_or_else(|| panic!("docs/architecture.md has no row for `{module}`"))
        };
        let mut files = Vec::new();
        let mut dirs = vec![root.join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path.strip_prefix(root.join("src")).unwrap().to_path_buf());
                }
            }
        }
        let mut checked = 0;
        for file in files {
            let parts: Vec<&str> = file
                .iter()
                .map(|p| p.to_str().expect("utf-8").trim_end_matches(".rs"))
                .collect();
            if matches!(parts[..], ["lib"] | ["main"]) || parts.contains(&"tests") {
                continue;
            }
            let line = row(parts[0]);
            if let Some(name) = parts.last().filter(|_| parts.len() > 1) {
                assert!(
                    line.contains(&format!("`{name}`"))
                        || line.contains(&format!("{}.rs`", parts[1..].join("/"))),
                    "docs/architecture.md's `{}` row does not name {}",
                    parts[0],
                    file.display()
                );
            }
            checked += 1;
        }
        assert!(checked > 50, "only {checked} modules found");
    }
}
