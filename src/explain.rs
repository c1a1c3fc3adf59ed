//! `phr-gateway explain`: run requests written as JSON lines through the same decision
//! pipeline the proxy uses, with no network, and say what the gateway would do and why.
//!
//! The input format is the corpora's (`method`, `path` with query, `headers` as
//! `[name, value]` pairs, `body`, `body_base64`); extra fields such as `id` are carried to
//! the output. A body goes through the proxy's own body step ([`pipeline::check_body`]):
//! inspection, file disarm, neutralising and a FHIR Bundle's entries. What `explain` has no
//! view of: sessions, stops, rate limits and the consent ledger (it runs without state).

use std::io::{BufRead, Write};

use base64::Engine as _;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};

use crate::decision::Decision;
use crate::pipeline::{self, RequestView};
use crate::policy::Snapshot;

/// One request to explain.
#[derive(Debug, Deserialize)]
pub struct ExplainRequest {
    /// Carried to the output when present.
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    /// Request method.
    pub method: String,
    /// Path with query, as on the wire.
    pub path: String,
    /// Header pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body, checked as the proxy checks it on routes that read bodies.
    #[serde(default)]
    pub body: Option<String>,
    /// Whether `body` is base64 (for bytes that are not UTF-8: an uploaded file).
    #[serde(default)]
    pub body_base64: bool,
}

/// What the gateway would do with one request.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Explanation {
    /// Input line number (1-based).
    pub line: usize,
    /// The request's `id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    /// Method as given.
    pub method: String,
    /// Path as given.
    pub path: String,
    /// The gateway's own endpoint the path names, if any (answered by the gateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<&'static str>,
    /// The matched route's id, if routing got that far.
    pub route: Option<String>,
    /// `allow` or `refuse`.
    pub decision: &'static str,
    /// The reason code (`allow` when allowed).
    pub reason: &'static str,
    /// The status the client would get (200 stands for "forwarded to the upstream").
    pub status: u16,
    /// What was wrong, for refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Input inspection's rule ids (R-WAF-1), as the access record lists them: the refusing
    /// rule in `block` mode, what was seen in `detect` mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<&'static str>,
    /// What the gateway would change in the body before forwarding it (R-WAF-2, R-WAF-4):
    /// `neutralised:note.text`, `disarmed:body:pdf:JavaScript`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// Why a line could not be explained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The line is not a request object.
    #[error("line {line}: not a request: {why}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// The parser's message.
        why: String,
    },
    /// Reading input or writing output failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Explain one request.
pub fn explain_one(
    line: usize,
    request: ExplainRequest,
    policy: &Snapshot,
) -> Result<Explanation, ExplainError> {
    let parse_err = |why: String| ExplainError::Parse { line, why };
    let method =
        Method::from_bytes(request.method.as_bytes()).map_err(|e| parse_err(e.to_string()))?;
    let (path, query) = match request.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (request.path.as_str(), None),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| parse_err(format!("header `{name}`: {e}")))?;
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|e| parse_err(format!("header value: {e}")))?;
        headers.append(name, value);
    }
    let view = RequestView {
        method: &method,
        path,
        query,
        headers: &headers,
        authority: None,
        raw_head: crate::protocol::RawHead::default(),
    };
    let body = match (request.body, request.body_base64) {
        (Some(b), true) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|e| parse_err(format!("body_base64: {e}")))?,
        ),
        (Some(b), false) => Some(b.into_bytes()),
        (None, _) => None,
    }
    .filter(|b| !b.is_empty());
    let mut evaluation = pipeline::evaluate(
        &view,
        policy,
        pipeline::LiveState::default(),
        crate::identity::unix_now(),
    );
    let mut rules: Vec<&'static str> = evaluation.findings.iter().map(|f| f.hit.rule).collect();
    let mut changes = Vec::new();
    let reads_body = evaluation.inspect_body || evaluation.bundle.is_some();
    let mut unread_bundle = evaluation.bundle.is_some();
    if let (Decision::Allow, Some(route), Some(body), true) =
        (&evaluation.decision, evaluation.route, &body, reads_body)
    {
        let outcome = pipeline::check_body(
            body,
            &headers,
            policy,
            pipeline::LiveState::default(),
            route,
            evaluation.principal.as_deref(),
            evaluation.purpose.as_ref(),
            evaluation.bundle.as_ref(),
        );
        unread_bundle = false;
        rules.extend(outcome.findings.iter().map(|f| f.hit.rule));
        changes = outcome.changes;
        if let Some(refusal) = outcome.refusal {
            evaluation.decision = Decision::Refuse(refusal);
        }
    }
    let (decision, status, detail) = match &evaluation.decision {
        Decision::Allow if unread_bundle => (
            "allow",
            200,
            Some("allowed so far: the body (a Bundle, or the resource created or updated) decides the patient, and the line has none".to_owned()),
        ),
        Decision::Allow => ("allow", 200, None),
        Decision::Refuse(r) => ("refuse", r.reason.status(), Some(r.detail.clone())),
    };
    Ok(Explanation {
        line,
        id: request.id,
        method: request.method.clone(),
        path: request.path.clone(),
        endpoint: evaluation.endpoint.map(|e| e.name()),
        route: evaluation.route.map(|r| r.id.to_string()),
        decision,
        reason: evaluation.decision.code(),
        status,
        detail,
        rules,
        changes,
    })
}

/// Explain every line of `input`, one JSON line each on `output`. Blank lines are skipped.
/// A line that is not a request is reported on `output` as `{"line": N, "error": ...}` and
/// counted; the rest still run. Returns the number of such lines.
pub fn explain_lines(
    input: impl BufRead,
    mut output: impl Write,
    policy: &Snapshot,
) -> Result<usize, ExplainError> {
    let mut errors = 0;
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<ExplainRequest>(&line)
            .map_err(|e| ExplainError::Parse {
                line: line_no,
                why: e.to_string(),
            })
            .and_then(|req| explain_one(line_no, req, policy));
        match result {
            Ok(explanation) => {
                serde_json::to_writer(&mut output, &explanation).map_err(std::io::Error::from)?;
            }
            Err(e) => {
                errors += 1;
                serde_json::to_writer(
                    &mut output,
                    &serde_json::json!({"line": line_no, "error": e.to_string()}),
                )
                .map_err(std::io::Error::from)?;
            }
        }
        output.write_all(b"\n")?;
    }
    Ok(errors)
}
