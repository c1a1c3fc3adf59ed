//! The compliance report (R-CMP-1): for every requirement ID of the guideline list
//! (`report/requirements.toml`, data in the repo), whether the compiled policy enforces it,
//! enforces it in part (and what is missing), leaves it to the operator's organisation, or does
//! not enforce it yet, with the evidence: the policy keys and, from a running gateway, live
//! counters. `phr-gateway report` and the admin listener's `/report` both render it.

use serde::{Deserialize, Serialize};

use crate::audit::OnFailure;
use crate::metrics::Readings;
use crate::policy::Snapshot;

const REQUIREMENTS: &str = include_str!("report/requirements.toml");

/// One requirement of the list.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Requirement {
    /// `R-TLS-1`, ...
    pub id: String,
    /// The guideline section(s) it comes from.
    pub section: String,
    /// English title.
    pub en: String,
    /// Japanese title.
    pub ja: String,
}

#[derive(Deserialize)]
struct RequirementList {
    requirement: Vec<Requirement>,
}

/// The requirement list.
pub fn requirements() -> Vec<Requirement> {
    // The file is part of the binary and checked by a test; an empty list would say so loudly
    // in every report.
    toml::from_str::<RequirementList>(REQUIREMENTS)
        .map(|l| l.requirement)
        .unwrap_or_default()
}

/// How far a requirement is met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The running policy enforces it.
    Enforced,
    /// Enforced in part; `missing` says what is not.
    Partial,
    /// Left to the operator's organisation; the gateway gives the means.
    Operator,
    /// The gateway does not enforce it (yet).
    NotEnforced,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Enforced => "enforced / 実施",
            Status::Partial => "partial / 一部実施",
            Status::Operator => "operator / 運用者",
            Status::NotEnforced => "not enforced / 未実施",
        }
    }
}

/// The assessment of one requirement.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    /// The requirement.
    #[serde(flatten)]
    pub requirement: Requirement,
    /// How far it is met.
    pub status: Status,
    /// How the gateway meets it.
    pub how: String,
    /// What is missing (partial, not enforced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// Policy keys and counters that show it.
    pub evidence: Vec<String>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The policy file.
    pub policy: String,
    /// Its version (SHA-256).
    pub policy_version: String,
    /// Counts per status.
    pub summary: Summary,
    /// One item per requirement, in list order.
    pub items: Vec<Item>,
}

/// Counts per status.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Summary {
    /// Enforced.
    pub enforced: usize,
    /// Enforced in part.
    pub partial: usize,
    /// Left to the operator.
    pub operator: usize,
    /// Not enforced.
    pub not_enforced: usize,
}

/// Assess every requirement against `snapshot`; `live` adds counters from a running gateway.
pub fn build(snapshot: &Snapshot, live: Option<&Readings>) -> Report {
    let items: Vec<Item> = requirements()
        .into_iter()
        .map(|requirement| {
            let a = assess(&requirement.id, snapshot, live);
            Item {
                requirement,
                status: a.status,
                how: a.how,
                missing: a.missing,
                evidence: a.evidence,
            }
        })
        .collect();
    let mut summary = Summary::default();
    for item in &items {
        match item.status {
            Status::Enforced => summary.enforced += 1,
            Status::Partial => summary.partial += 1,
            Status::Operator => summary.operator += 1,
            Status::NotEnforced => summary.not_enforced += 1,
        }
    }
    Report {
        policy: snapshot.source.display().to_string(),
        policy_version: snapshot.version.to_string(),
        summary,
        items,
    }
}

struct Assessment {
    status: Status,
    how: String,
    missing: Option<String>,
    evidence: Vec<String>,
}

fn met(how: &str, evidence: Vec<String>) -> Assessment {
    Assessment {
        status: Status::Enforced,
        how: how.to_owned(),
        missing: None,
        evidence,
    }
}

/// Enforced when nothing is missing, partial otherwise.
fn unless_missing(how: &str, missing: Vec<String>, evidence: Vec<String>) -> Assessment {
    Assessment {
        status: if missing.is_empty() {
            Status::Enforced
        } else {
            Status::Partial
        },
        how: how.to_owned(),
        missing: (!missing.is_empty()).then(|| missing.join("; ")),
        evidence,
    }
}

fn not_built(what: &str) -> Assessment {
    Assessment {
        status: Status::NotEnforced,
        how: String::new(),
        missing: Some(what.to_owned()),
        evidence: Vec::new(),
    }
}

fn assess(id: &str, s: &Snapshot, live: Option<&Readings>) -> Assessment {
    let routes = s.routes.routes();
    let admin = s.admin.as_ref();
    match id {
        "R-TLS-1" => {
            let mut missing = Vec::new();
            if s.tls.allow_tls12 {
                missing.push(
                    "TLS 1.2 is enabled (tls.allow_tls12 = true); it is limited to ECDHE with AES-GCM or ChaCha20-Poly1305"
                        .to_owned(),
                );
            }
            unless_missing(
                "TLS 1.3 only on the public and admin listeners; the plain listener only redirects",
                missing,
                vec![
                    format!("tls.allow_tls12 = {}", s.tls.allow_tls12),
                    format!("listeners.redirect = {:?}", s.listeners.redirect.map(|a| a.to_string())),
                ],
            )
        }
        "R-TLS-2" => {
            let mut missing = Vec::new();
            let mut evidence = vec![
                format!("tls.certificate_chain = {}", s.tls.certificate_chain.display()),
                format!(
                    "tls.watch_interval_secs = {}",
                    s.tls.watch_interval.map_or(0, |d| d.as_secs())
                ),
            ];
            let expires = live
                .and_then(|r| r.certificate_expires_at)
                .or_else(|| crate::tls::certificate::not_after(&s.tls.server_key));
            if let Some(expires) = expires {
                let days = (expires - crate::identity::unix_now()) / 86_400;
                evidence.push(format!("certificate expires in {days} days"));
                if days < 14 {
                    missing.push(format!("the certificate expires in {days} days"));
                }
            }
            unless_missing(
                "serves the operator's certificate; a renewed file is served without restart",
                missing,
                evidence,
            )
        }
        "R-TLS-3" => met(
            "tokens are read only on TLS listeners; HSTS on every response",
            vec!["Strict-Transport-Security on every response (src/harden.rs)".into()],
        ),
        "R-TLS-4" => {
            let plain: Vec<&str> = s
                .upstreams
                .iter()
                .filter(|u| u.url.starts_with("http://"))
                .map(|u| u.name.as_str())
                .collect();
            unless_missing(
                "TLS (optionally mutual) to upstreams, certificate verified with SNI",
                if plain.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("upstreams over plain http: {}", plain.join(", "))]
                },
                s.upstreams
                    .iter()
                    .map(|u| format!("upstreams.{} = {}", u.name, u.url))
                    .collect(),
            )
        }
        "R-AUTH-1" => {
            let anonymous: Vec<&str> =
                routes.iter().filter(|r| r.anonymous).map(|r| &*r.id).collect();
            met(
                "every route not declared anonymous needs a verified token",
                vec![
                    format!("issuers: {}", s.identity.issuers.len()),
                    format!(
                        "anonymous routes: {}",
                        if anonymous.is_empty() {
                            "none".to_owned()
                        } else {
                            anonymous.join(", ")
                        }
                    ),
                ],
            )
        }
        "R-AUTH-2" => {
            let single: Vec<&str> = routes
                .iter()
                .filter(|r| !r.anonymous && !r.mfa)
                .map(|r| &*r.id)
                .collect();
            unless_missing(
                "tokens must show two factor kinds (amr) or an MFA acr; step-up by auth_time",
                if single.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("routes with mfa = false: {}", single.join(", "))]
                },
                vec![format!(
                    "routes needing MFA: {}",
                    routes.iter().filter(|r| r.mfa).count()
                )],
            )
        }
        "R-AUTH-3" => unless_missing(
            "idle and absolute session limits, logout, revocation by session, subject or token (this node)",
            if s.identity.sessionless_tokens {
                vec!["identity.sessionless_tokens = true: tokens without sid or jti escape the idle lock and logout".into()]
            } else {
                Vec::new()
            },
            vec![
                format!("identity.session_idle_secs = {}", s.identity.sessions.idle_secs),
                format!(
                    "identity.session_absolute_secs = {}",
                    s.identity.sessions.absolute_secs
                ),
                format!(
                    "active sessions: {}",
                    live.map_or("-".into(), |r| r.active_sessions.to_string())
                ),
            ],
        ),
        "R-AUTH-4" => match admin {
            None => not_built(
                "no [admin] table: no admin listener; operations need SIGHUP or a restart",
            ),
            Some(plan) => unless_missing(
                "admin listener with named administrators (mTLS or admin tokens); every call in the state log",
                if plan.admins.is_empty() {
                    vec!["no [[admins]] are named".into()]
                } else {
                    Vec::new()
                },
                vec![
                    format!("admin.listen = {}", plan.listen),
                    format!(
                        "admins: {}",
                        plan.admins
                            .iter()
                            .map(|a| a.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ],
            ),
        },
        "R-AUTH-5" => met(
            "pinned algorithms, issuer, audience, expiry; failed-attempt lockout per address",
            vec![
                format!("identity.max_failures = {}", s.identity.failures.max_failures),
                format!("identity.lockout_secs = {}", s.identity.failures.lockout_secs),
            ],
        ),
        "R-AZ-1" => {
            let open: Vec<&str> = routes
                .iter()
                .filter(|r| !r.anonymous && r.category.is_health() && r.access.is_empty())
                .map(|r| &*r.id)
                .collect();
            unless_missing(
                "default-deny route table, a data category per route; scopes (SMART on FHIR), roles and the data subject per route, or derived per request on `fhir` routes (interaction, type, patient; Bundles entry by entry)",
                if open.is_empty() {
                    Vec::new()
                } else {
                    vec![format!(
                        "health-data routes with no scopes, roles or subject: {}",
                        open.join(", ")
                    )]
                },
                vec![
                    format!("routes: {}", routes.len()),
                    format!(
                        "routes with scopes, roles or a subject: {}",
                        routes.iter().filter(|r| !r.access.is_empty()).count()
                    ),
                ],
            )
        }
        "R-AZ-7" => Assessment {
            status: Status::Partial,
            how: format!(
                "an administrator can stop a subject; the subject's requests, and requests for the subject's data on routes that declare `subject` (recipients' too), are refused{}",
                if s.access.stop_refuses_own_reads {
                    ""
                } else {
                    "; the subject's own reads are exempt (access.stop_refuses_own_reads = false)"
                }
            ),
            missing: Some(
                "routes without `subject` cannot tell whose data they serve: a stop reaches them only through the caller".into(),
            ),
            evidence: vec![format!(
                "stopped subjects: {}",
                live.map_or("-".into(), |r| r.stopped_subjects.to_string())
            )],
        },
        "R-AZ-2" => {
            let with: Vec<&str> = routes
                .iter()
                .filter(|r| !r.access.purposes.is_empty())
                .map(|r| &*r.id)
                .collect();
            Assessment {
                status: if with.is_empty() {
                    Status::NotEnforced
                } else {
                    Status::Partial
                },
                how: "routes list the purposes they serve; a request states one (checked against the token's purposes when it lists them) and it is recorded; data taken in needs the subject's acquisition consent for that purpose, data provided to a recipient a provision consent for it".into(),
                missing: Some(if with.is_empty() {
                    "no route lists purposes".into()
                } else {
                    "the subject's own reads are not checked against a consented purpose: the subject is the user".into()
                }),
                evidence: vec![
                    format!("purposes in the catalogue: {}", s.access.purposes.len()),
                    format!("routes with purposes: {}", with.len()),
                ],
            }
        }
        "R-AZ-3" => {
            let ingesting = routes
                .iter()
                .filter(|r| {
                    r.category.is_health()
                        && !r.anonymous
                        && r.methods.iter().any(|m| {
                            matches!(*m, http::Method::POST | http::Method::PUT | http::Method::PATCH)
                        })
                })
                .count();
            met(
                "health data sent in (POST/PUT/PATCH on a health category) needs the data subject's live acquisition consent",
                vec![
                    format!("routes that take health data in: {ingesting}"),
                    format!(
                        "live consents: {}",
                        live.map_or("-".into(), |r| r.live_consents.to_string())
                    ),
                ],
            )
        }
        "R-AZ-5" => met(
            "GET /.phr/consents lists the subject's current consents and full history",
            vec!["docs/api/consents.yaml".into()],
        ),
        "R-AZ-6" => met(
            "POST /.phr/consents/{id}/withdraw, effective on the next request",
            vec!["docs/api/consents.yaml".into()],
        ),
        "R-AZ-4" => met(
            "a registered recipient's application reaches a subject's data only under the subject's live provision consent for that recipient, purpose and category, naming the country when the recipient is abroad; any other token reaches only its own subject's data",
            vec![
                format!("recipients: {}", s.access.recipients.len()),
                format!(
                    "recipients abroad: {}",
                    s.access.recipients.iter().filter(|r| r.abroad).count()
                ),
            ],
        ),
        "R-AZ-8" => {
            let now = crate::identity::unix_now();
            let lapsed: Vec<String> = s
                .access
                .recipients
                .iter()
                .filter(|r| r.expired(now))
                .map(|r| format!("{} (held through {})", r.id, r.confirmed_through))
                .collect();
            let evidence = s
                .access
                .recipients
                .iter()
                .map(|r| {
                    format!(
                        "{}: confirmed {}, holds through {}",
                        r.id, r.confirmed_on, r.confirmed_through
                    )
                })
                .collect();
            let how = "recipients are registered with the date their compliance was confirmed and a re-check interval; provision to a recipient whose confirmation lapsed is refused";
            if lapsed.is_empty() {
                met(how, evidence)
            } else {
                Assessment {
                    status: Status::Operator,
                    how: how.into(),
                    missing: Some(format!(
                        "re-confirm, or remove: {}; provision to them is refused meanwhile",
                        lapsed.join(", ")
                    )),
                    evidence,
                }
            }
        }
        "R-LOG-3" => met(
            "each release to a recipient, and each receipt from one, is a durable `third_party_record` state event written before the response leaves (refused with 503 when it cannot be written); the subject lists them at GET /.phr/provisions",
            vec!["docs/api/consents.yaml".into()],
        ),
        "R-LOG-1" => unless_missing(
            "an access record for every request, written before the response is released",
            if s.audit.on_failure == OnFailure::Degrade {
                vec!["audit.on_audit_failure = degrade serves requests whose record is lost".into()]
            } else {
                Vec::new()
            },
            vec![
                format!("audit.dir = {}", s.audit.dir.display()),
                format!(
                    "access records in the log: {}",
                    live.and_then(|r| r.audit)
                        .map_or("-".into(), |a| a.access_appended.to_string())
                ),
            ],
        ),
        "R-LOG-2" => met(
            "hash chain, signed Merkle checkpoints; `phr-gateway audit verify`",
            vec![format!("audit.signing_key = {}", s.audit.signing_key.display())],
        ),
        "R-LOG-4" => met(
            "every policy version, refused reload and admin call is a state-log event",
            vec![format!(
                "state events in the log: {}",
                live.and_then(|r| r.audit)
                    .map_or("-".into(), |a| a.state_appended.to_string())
            )],
        ),
        "R-LOG-5" => unless_missing(
            "records hold route templates, no bodies or health values",
            if s.pseudonymiser.is_none() {
                vec!["subjects are recorded in clear (audit.pseudonym_key is not set)".into()]
            } else {
                Vec::new()
            },
            vec![format!("audit.pseudonym_key set: {}", s.pseudonymiser.is_some())],
        ),
        "R-WAF-1" => {
            let mut off = Vec::new();
            let mut detect = Vec::new();
            for r in routes {
                match r.inspect.mode {
                    crate::inspect::Mode::Off => off.push(&*r.id),
                    crate::inspect::Mode::Detect => detect.push(&*r.id),
                    crate::inspect::Mode::Block | crate::inspect::Mode::Neutralise => {}
                }
            }
            let mut missing = vec![
                "the measured goals are not all met: the protocol classes below 95% detected, more than 0.5% of CRS's and libinjection's benign cases refused (docs/inspect.md has the table)"
                    .to_owned(),
            ];
            if !off.is_empty() {
                missing.push(format!("inspection off on: {}", off.join(", ")));
            }
            if !detect.is_empty() {
                missing.push(format!("detect only (not blocking) on: {}", detect.join(", ")));
            }
            Assessment {
                status: Status::Partial,
                how: "every value a backend reads (path, query, cookies, headers, JSON/form/XML/multipart bodies) is normalised and run through the detectors; block or detect per route".into(),
                missing: Some(missing.join("; ")),
                evidence: vec![format!(
                    "routes blocking: {}",
                    routes
                        .iter()
                        .filter(|r| r.inspect.mode == crate::inspect::Mode::Block)
                        .count()
                )],
            }
        }
        "R-WAF-2" => {
            let accepting: Vec<&str> = routes
                .iter()
                .filter(|r| r.inspect.files.any())
                .map(|r| &*r.id)
                .collect();
            unless_missing(
                "uploads are refused unless the route lists their type; PDFs lose JavaScript, actions, embedded files and XFA, JPEG/PNG their metadata, and are rebuilt; archives and files that are not their declared type are refused; what was removed is recorded",
                Vec::new(),
                vec![format!(
                    "routes accepting files: {}",
                    if accepting.is_empty() {
                        "none (every upload is refused)".to_owned()
                    } else {
                        accepting.join(", ")
                    }
                )],
            )
        }
        "R-WAF-4" => {
            let neutralising: Vec<String> = routes
                .iter()
                .filter(|r| r.inspect.mode == crate::inspect::Mode::Neutralise)
                .map(|r| format!("{} ({})", r.id, r.inspect.neutralise.join(", ")))
                .collect();
            unless_missing(
                "named body fields are rewritten by fixed rules (HTML entities; FHIR narratives cleaned to FHIR's XHTML), recorded in the access record and announced in PHR-Neutralised; everything else is blocked",
                Vec::new(),
                vec![format!(
                    "routes neutralising: {}",
                    if neutralising.is_empty() {
                        "none".to_owned()
                    } else {
                        neutralising.join("; ")
                    }
                )],
            )
        }
        "R-WAF-3" => unless_missing(
            "request smuggling shapes (CL+TE, duplicate or non-numeric lengths, transfer codings other than chunked, bare LF) and non-canonical paths are refused; URI length, query parameter count, header count and bytes, and JSON depth are bounded (414/400/431/400); bodies read whole are bounded (limits.max_body_bytes, 413)",
            Vec::new(),
            vec![format!(
                "limits: uri {} B, {} parameters, {} headers, {} header bytes, JSON depth {}, body read whole {} B",
                s.limits.request.uri_bytes,
                s.limits.request.query_params,
                s.limits.request.headers,
                s.limits.request.header_bytes,
                s.limits.request.json_depth,
                s.limits.request.body_bytes
            )],
        ),
        "R-NET-1" => {
            let route_lists = routes.iter().filter(|r| !r.allow_from.is_empty()).count();
            let any = !s.network.allow.is_empty() || !s.network.deny.is_empty() || route_lists > 0;
            unless_missing(
                "reverse proxy in front; CIDR allow and deny lists, per-route allow lists",
                if any {
                    Vec::new()
                } else {
                    vec!["no network allow or deny list is set".into()]
                },
                vec![
                    format!("network.allow: {}", s.network.allow.networks().len()),
                    format!("network.deny: {}", s.network.deny.networks().len()),
                    format!("routes with allow_from: {route_lists}"),
                ],
            )
        }
        "R-NET-2" => {
            let mut missing = Vec::new();
            if let Some(plan) = admin {
                if !plan.listen.ip().is_loopback() && plan.allow.is_empty() {
                    missing.push(format!(
                        "the admin listener ({}) is not on loopback and admin.allow is empty",
                        plan.listen
                    ));
                }
            }
            let hosts = match s.listeners.hosts.as_slice() {
                [] => "hosts: any (listeners.hosts is empty)".to_owned(),
                names => format!("hosts: {}", names.join(", ")),
            };
            unless_missing(
                "only declared routes are forwarded (default deny); the admin listener is separate",
                missing,
                vec![format!("routes: {}", routes.len()), hosts],
            )
        }
        "R-NET-3" => {
            let mut missing = Vec::new();
            if s.limits.per_client.is_none() {
                missing.push("no per-client rate limit (limits.per_client)".to_owned());
            }
            if admin.is_none() {
                missing.push("no admin listener for emergency stop and read-only mode".to_owned());
            }
            unless_missing(
                "rate limits per client, subject and route; connection limits and deadlines; emergency stop and read-only mode",
                missing,
                vec![
                    format!("limits.per_client = {:?}", s.limits.per_client.map(|r| (r.requests.get(), r.per_secs, r.burst.get()))),
                    format!("limits.per_subject = {:?}", s.limits.per_subject.map(|r| (r.requests.get(), r.per_secs, r.burst.get()))),
                    format!("routes with rate_limit: {}", s.limits.routes_limited),
                    format!("limits.connections_per_client = {}", s.limits.connections.per_client),
                    format!("limits.header_timeout_secs = {}", s.limits.connections.header_timeout.as_secs()),
                ],
            )
        }
        "R-OPS-1" => unless_missing(
            "Prometheus metrics, shipped alert rules, /healthz and /readyz; 503 with Retry-After when stopped",
            if admin.is_none() {
                vec!["no admin listener, so no /metrics or health endpoints".into()]
            } else {
                Vec::new()
            },
            vec!["deploy/prometheus/alerts.yml".into()],
        ),
        "R-OPS-2" => met(
            "policy files validated before use, reloaded atomically, the old policy kept when a new one is invalid",
            vec![format!("policy version {}", s.version)],
        ),
        "R-OPS-3" => Assessment {
            status: Status::Operator,
            how: "`phr-gateway audit export` and `audit verify` make and check backups of the trail".into(),
            missing: Some("making, keeping and test-restoring backups is the operator's".into()),
            evidence: Vec::new(),
        },
        "R-CMP-1" => met("this report, from the running policy", Vec::new()),
        _ => not_built("no assessment exists for this requirement"),
    }
}

impl Report {
    /// The report as Markdown, headings in Japanese and English.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# 自己点検結果 / Compliance report\n\npolicy `{}` version `{}`\n",
            self.policy, self.policy_version
        );
        let _ = writeln!(
            out,
            "## 概要 / Summary\n\n| 実施 enforced | 一部 partial | 運用者 operator | 未実施 not enforced |\n|---|---|---|---|\n| {} | {} | {} | {} |\n",
            self.summary.enforced,
            self.summary.partial,
            self.summary.operator,
            self.summary.not_enforced
        );
        let _ = writeln!(out, "## 要件ごとの状況 / Per requirement\n");
        for item in &self.items {
            let r = &item.requirement;
            let _ = writeln!(out, "### {} — {} / {}\n", r.id, r.ja, r.en);
            let _ = writeln!(out, "- 指針 / guideline: {}", r.section);
            let _ = writeln!(out, "- 状況 / status: **{}**", item.status.label());
            if !item.how.is_empty() {
                let _ = writeln!(out, "- 方法 / how: {}", item.how);
            }
            if let Some(missing) = &item.missing {
                let _ = writeln!(out, "- 不足 / missing: {missing}");
            }
            for e in &item.evidence {
                let _ = writeln!(out, "- 根拠 / evidence: `{e}`");
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_parses_and_every_id_has_an_assessment() {
        let list = requirements();
        assert_eq!(list.len(), 33);
        let mut ids = std::collections::HashSet::new();
        for r in &list {
            assert!(ids.insert(r.id.clone()), "{} twice", r.id);
            assert!(!r.section.is_empty() && !r.en.is_empty() && !r.ja.is_empty());
        }
    }

    /// docs/requirements.md says where each requirement is enforced and which test proves it:
    /// every id of the list has its row there.
    #[test]
    fn every_requirement_has_a_row_in_docs_requirements() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/requirements.md"))
                .expect("docs/requirements.md");
        for r in requirements() {
            let row = format!("\n| {} |", r.id);
            assert!(
                doc.contains(&row),
                "docs/requirements.md has no row for {}",
                r.id
            );
        }
    }

    #[test]
    fn the_list_matches_the_guideline_list_in_shared() {
        let path = std::env::var_os("PHR_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
            .join("guideline/REQUIREMENTS.md");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: corpus not found at {}", path.display());
            return;
        };
        let theirs: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("| R-"))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let list = requirements();
        let ours: std::collections::BTreeSet<&str> = list.iter().map(|r| &r.id[2..]).collect();
        assert_eq!(ours, theirs);
    }
}
