//! `phr-gateway explain`: run requests written as JSON lines through the same decision
//! pipeline the proxy uses, with no network, and say what the gateway would do and why.
//!
//! The input format is the corpora's (`method`, `path` with query, `headers` as
//! `[name, value]` pairs, `body`); extra fields such as `id` are carried to the output.

use std::io::{BufRead, Write};

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
    /// Body (not yet inspected by any step).
    #[serde(default)]
    pub body: Option<String>,
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
        raw_head: crate::protocol::RawHead::default(),
    };
    let evaluation = pipeline::evaluate(
        &view,
        policy,
        pipeline::LiveState::default(),
        crate::identity::unix_now(),
    );
    let (decision, status, detail) = match &evaluation.decision {
        Decision::Allow if evaluation.bundle.is_some() => (
            "allow",
            200,
            Some("allowed so far: the body (a Bundle, or the resource created or updated) decides the patient, and is not read here".to_owned()),
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
