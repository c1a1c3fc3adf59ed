//! What the audit logs hold, and the one line format both logs share (R-LOG-1, R-LOG-2, R-LOG-5).
//!
//! A stored line is canonical JSON (keys sorted, no whitespace, integers only) of the shape
//!
//! ```text
//! {"chain":"<64 hex>","record":<record>}
//! ```
//!
//! where `<record>` is itself canonical JSON carrying `v` (format version), `log`, `seq`,
//! `time` and `node`, and `chain` is `SHA-256(previous chain || <record> bytes)`, the previous
//! chain of the first record being 32 zero bytes. The Merkle leaf of a record is
//! `SHA-256(0x00 || line)` without its newline. Nothing in a record is ever re-encoded: the
//! verifier hashes the bytes as stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// Version of the record format, the `v` of every record.
pub const RECORD_VERSION: u8 = 1;

/// The chain value before a log's first record.
pub const GENESIS_CHAIN: Hash = [0u8; 32];

const LINE_PREFIX: &[u8] = b"{\"chain\":\"";
const RECORD_KEY: &[u8] = b"\",\"record\":";
/// Bytes before the record in a line: prefix, 64 hex digits, the record key.
const RECORD_OFFSET: usize = LINE_PREFIX.len() + 64 + RECORD_KEY.len();

/// The two logs of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// One record per request.
    Access,
    /// Consents, revocations, stops, admin actions, policy versions, store events.
    State,
}

impl LogKind {
    /// Both logs, in the order the tools report them.
    pub const ALL: [LogKind; 2] = [LogKind::Access, LogKind::State];

    /// The log's name: its directory and its `log` field.
    pub const fn name(self) -> &'static str {
        match self {
            LogKind::Access => "access",
            LogKind::State => "state",
        }
    }

    /// Its position in per-log arrays.
    pub const fn index(self) -> usize {
        match self {
            LogKind::Access => 0,
            LogKind::State => 1,
        }
    }

    /// Parse a log name.
    pub fn from_name(name: &str) -> Option<Self> {
        LogKind::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// One request, as the access log keeps it (R-LOG-1). Built by the proxy; never holds a body,
/// a token, a raw path or a health value (R-LOG-5): the route's path *template* stands for the
/// path, and the principal may be pseudonymised ([`super::Pseudonymiser`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRecord {
    /// When the request arrived (RFC 3339, UTC, microseconds).
    pub time: String,
    /// The gateway's request id (also sent as `X-Request-Id`).
    pub request_id: String,
    /// The client's address.
    pub client: String,
    /// TLS version of the client connection.
    pub tls: Option<&'static str>,
    /// Who: the verified subject (or its pseudonym).
    pub principal: Option<String>,
    /// Which client application (`azp` / `client_id`).
    pub client_id: Option<String>,
    /// Request method.
    pub method: String,
    /// The route id, when one matched.
    pub route: Option<Arc<str>>,
    /// The route's path template, when one matched.
    pub template: Option<Arc<str>>,
    /// The purpose the request stated.
    pub purpose: Option<String>,
    /// The route's data category.
    pub category: Option<&'static str>,
    /// `allow`, `refuse` or `lost`.
    pub decision: &'static str,
    /// The reason code (see `docs/policy.md`), for refusals and lost connections.
    pub reason: Option<&'static str>,
    /// The status the client was sent (0 when none was).
    pub status: u16,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes: the declared `Content-Length` when the record is written before
    /// the body is released, else what was sent.
    pub bytes_out: Option<u64>,
    /// Microseconds the upstream took to answer with a response head.
    pub upstream_us: Option<u64>,
    /// Microseconds from the request's arrival to the record.
    pub total_us: u64,
    /// Inspection rules that fired.
    pub rules: Vec<String>,
    /// What the gateway changed in the request body before forwarding it: neutralised fields
    /// (`neutralised:note.text`, R-WAF-4) and what was removed from uploaded files
    /// (`disarmed:upload:pdf:JavaScript`, R-WAF-2).
    pub changes: Vec<String>,
}

/// The access record as stored. Fields are declared in key order so that serde writes
/// canonical JSON directly (a test checks it against a sorted re-encoding).
#[derive(Serialize)]
struct AccessBody<'a> {
    bytes_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_out: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    changes: &'a [String],
    client: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    decision: &'a str,
    log: &'static str,
    method: &'a str,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    rules: &'a [String],
    seq: u64,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a str>,
    time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'a str>,
    total_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_us: Option<u64>,
    v: u8,
}

impl AccessRecord {
    /// Append the record's canonical JSON to `out`.
    pub fn write_body(&self, seq: u64, node: &str, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let body = AccessBody {
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            category: self.category,
            changes: &self.changes,
            client: &self.client,
            client_id: self.client_id.as_deref(),
            decision: self.decision,
            log: LogKind::Access.name(),
            method: &self.method,
            node,
            principal: self.principal.as_deref(),
            purpose: self.purpose.as_deref(),
            reason: self.reason,
            request_id: &self.request_id,
            route: self.route.as_deref(),
            rules: &self.rules,
            seq,
            status: self.status,
            template: self.template.as_deref(),
            time: &self.time,
            tls: self.tls,
            total_us: self.total_us,
            upstream_us: self.upstream_us,
            v: RECORD_VERSION,
        };
        serde_json::to_writer(out, &body)
    }
}

/// A change of the gateway's state, kept in the state log (R-LOG-3, R-LOG-4). Written durably:
/// the call that records one returns only after it is on disk.
///
/// Later parts of the gateway (consents, revocations, admin actions) add variants. A variant
/// never has a field named `seq` or `time` (the envelope's), at any depth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StateEvent {
    /// A policy was put in service, at start or by a reload (R-LOG-4, R-OPS-2).
    PolicyLoaded {
        /// SHA-256 of the policy file.
        version: String,
        /// The policy file.
        source: String,
        /// `start` or `reload`.
        trigger: String,
        /// The version it replaced (reloads).
        #[serde(skip_serializing_if = "Option::is_none")]
        previous: Option<String>,
    },
    /// A reload was refused; the running policy stayed (R-LOG-4).
    PolicyRejected {
        /// The policy still in service.
        running: String,
        /// Why the new file was refused.
        error: String,
    },
    /// At start, a torn last record (a write the crash cut short) was cut off the log.
    TornRecordCut {
        /// Which log.
        log: LogKind,
        /// The segment file.
        segment: String,
        /// Where the cut was made.
        offset: u64,
        /// How many bytes were removed.
        bytes: u64,
    },
    /// A session ended: logout, revocation (R-AUTH-3).
    SessionEnded {
        /// `<issuer id>|<sid or token id>`.
        session: String,
        /// `logout`, `revoked` or who revoked it.
        reason: String,
    },
    /// Every session of a subject signed in before `at` is revoked ("log out everywhere").
    SubjectRevoked {
        /// The subject (`sub`).
        subject: String,
        /// Seconds since the epoch: sign-ins up to this time are refused.
        at: i64,
        /// Who asked.
        by: String,
    },
    /// One token (`jti`) is revoked.
    TokenRevoked {
        /// The token id.
        token_id: String,
        /// Who asked.
        by: String,
    },
    /// An administrator changed the gateway's mode (R-NET-3, R-LOG-4).
    ModeChanged {
        /// The new mode.
        mode: crate::controls::Mode,
        /// `Retry-After` sent to users while stopped or read-only.
        retry_after_secs: u64,
        /// The administrator.
        by: String,
    },
    /// The use of a subject's data was stopped (R-AZ-7).
    SubjectStopped {
        /// The subject (`sub`).
        subject: String,
        /// The administrator.
        by: String,
    },
    /// A subject stop was lifted.
    SubjectResumed {
        /// The subject (`sub`).
        subject: String,
        /// The administrator.
        by: String,
    },
    /// A call on the admin listener, allowed or refused (R-AUTH-4, R-LOG-4). Calls that
    /// change something also write the change's own event (with the same administrator).
    AdminCall {
        /// The administrator's name in the policy; `-` when no credential was recognised.
        admin: String,
        /// How they proved it: `certificate`, `token` or `none`.
        credential: String,
        /// `METHOD /path`.
        action: String,
        /// The HTTP status answered.
        status: u16,
        /// Why it was refused, or what it did.
        outcome: String,
    },
    /// A subject gave a consent (R-AZ-3, R-AZ-5).
    ConsentGranted {
        /// The consent's id.
        consent: String,
        /// The subject who gave it.
        subject: String,
        /// What it allows.
        kind: crate::consent::ConsentKind,
        /// The data categories it covers.
        categories: Vec<crate::policy::DataCategory>,
        /// The purpose it was given for.
        purpose: String,
        /// For a provision consent: the recipient's id (R-AZ-4).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipient: Option<String>,
        /// For a provision consent to a recipient abroad: the country the subject agreed to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        country: Option<String>,
    },
    /// A subject's data was released to a registered recipient, or received from one
    /// (R-LOG-3): written durably before the response leaves the gateway.
    ThirdPartyRecord {
        /// `provided` or `received`.
        direction: crate::consent::Direction,
        /// The data subject.
        subject: String,
        /// The recipient's id.
        recipient: String,
        /// The data categories released.
        categories: Vec<crate::policy::DataCategory>,
        /// The purpose the recipient stated.
        purpose: String,
        /// The request's id (its access record has the same).
        request_id: String,
        /// The route's id.
        route: String,
        /// The status released with the data.
        status: u16,
    },
    /// A subject withdrew a consent (R-AZ-6).
    ConsentWithdrawn {
        /// The consent's id.
        consent: String,
        /// The subject.
        subject: String,
    },
    /// The store could not write for a while; in `degrade` mode requests were served without
    /// their access records.
    AuditOutage {
        /// When the first write failed.
        since: String,
        /// When writing worked again.
        until: String,
        /// The error that started it.
        error: String,
        /// Access records that could not be written.
        lost_access_records: u64,
    },
}

impl StateEvent {
    /// Append the event's canonical JSON (with the envelope) to `out`.
    pub fn write_body(
        &self,
        seq: u64,
        time: &str,
        node: &str,
        out: &mut Vec<u8>,
    ) -> serde_json::Result<()> {
        // Low volume: going through `Value` (a sorted map) makes any variant canonical.
        let mut value = serde_json::to_value(self)?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("log".into(), LogKind::State.name().into());
            map.insert("node".into(), node.into());
            map.insert("seq".into(), seq.into());
            map.insert("time".into(), time.into());
            map.insert("v".into(), RECORD_VERSION.into());
        }
        serde_json::to_writer(out, &value)
    }
}

/// `SHA-256(previous || record)`.
pub fn chain_hash(previous: &Hash, record: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(record);
    h.finalize().into()
}

/// Wrap a record into its stored line (with the newline), returning the new chain value.
/// `record` is the canonical JSON already appended to `out` from `record_start` on.
pub fn seal_line(previous: &Hash, out: &mut Vec<u8>, record_start: usize) -> Hash {
    let chain = chain_hash(previous, &out[record_start..]);
    let mut head = [0u8; RECORD_OFFSET];
    head[..LINE_PREFIX.len()].copy_from_slice(LINE_PREFIX);
    // 64 hex digits into a buffer of exactly that size cannot fail.
    let _ = hex::encode_to_slice(chain, &mut head[LINE_PREFIX.len()..LINE_PREFIX.len() + 64]);
    head[LINE_PREFIX.len() + 64..].copy_from_slice(RECORD_KEY);
    out.splice(record_start..record_start, head);
    out.extend_from_slice(b"}\n");
    chain
}

/// A stored line taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The chain value it carries.
    pub chain: Hash,
    /// The record's bytes, as hashed.
    pub record: &'a [u8],
    /// The record's `seq`.
    pub seq: u64,
}

/// Take a stored line (without its newline) apart, strictly: anything but the exact layout
/// is `None`.
pub fn parse_line(line: &[u8]) -> Option<Line<'_>> {
    if line.len() < RECORD_OFFSET + 2
        || !line.starts_with(LINE_PREFIX)
        || &line[LINE_PREFIX.len() + 64..RECORD_OFFSET] != RECORD_KEY
        || line.last() != Some(&b'}')
    {
        return None;
    }
    let mut chain = [0u8; 32];
    hex::decode_to_slice(&line[LINE_PREFIX.len()..LINE_PREFIX.len() + 64], &mut chain).ok()?;
    let record = &line[RECORD_OFFSET..line.len() - 1];
    if record.first() != Some(&b'{') || record.last() != Some(&b'}') {
        return None;
    }
    Some(Line {
        chain,
        record,
        seq: top_level_number(record, b"\"seq\":")?,
    })
}

/// The value of a string field of a record (its `time`, say).
pub fn string_field<'a>(record: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let at = find(record, key)? + key.len();
    let rest = record.get(at..)?.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// A key's pattern (`"seq":`) cannot occur inside a JSON string, whose quotes are escaped, and
/// records have no nested `seq` or `time`: the first match is the envelope's.
fn top_level_number(record: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(record, key)? + key.len();
    let digits = record[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&record[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The current time as records write it: RFC 3339, UTC, microseconds, fixed width (so that
/// text order is time order).
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// [`now_rfc3339`]'s format for any instant: `2026-11-25T10:00:00.000001Z`.
///
/// Written digit by digit: every access record carries one, and the `time` crate's formatter
/// walks a format description for it (about 1,900 instructions a record, callgrind; this is a
/// tenth of that). Years outside 0–9999 take the formatter.
pub fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let Ok(year) = u32::try_from(t.year()) else {
        return format_time_slowly(t);
    };
    if year > 9999 {
        return format_time_slowly(t);
    }
    let mut out = [0u8; 27];
    let fields: [(u32, usize, usize); 7] = [
        (year, 0, 4),
        (u32::from(u8::from(t.month())), 5, 2),
        (u32::from(t.day()), 8, 2),
        (u32::from(t.hour()), 11, 2),
        (u32::from(t.minute()), 14, 2),
        (u32::from(t.second()), 17, 2),
        (t.microsecond(), 20, 6),
    ];
    for (mut value, at, width) in fields {
        for slot in out[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    for (at, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        out[at] = separator;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

fn format_time_slowly(t: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(FORMAT).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_the_time_crate_writes_them() {
        let mut t = time::OffsetDateTime::UNIX_EPOCH;
        // Instants spread over centuries, with every field's carries, and the slow path.
        let step = time::Duration::new(86_400 * 290 + 3_671, 123_457_000);
        for _ in 0..10_000 {
            assert_eq!(format_time(t), format_time_slowly(t), "{t}");
            t += step;
        }
        let far = time::OffsetDateTime::UNIX_EPOCH - time::Duration::days(800_000);
        assert_eq!(format_time(far), format_time_slowly(far));
        let tokyo = time::OffsetDateTime::UNIX_EPOCH.to_offset(time::macros::offset!(+9));
        assert_eq!(format_time(tokyo), "1970-01-01T00:00:00.000000Z");
    }

    fn sample() -> AccessRecord {
        AccessRecord {
            time: "2026-11-25T10:00:00.000001Z".into(),
            request_id: "0193-abc".into(),
            client: "192.0.2.1".into(),
            tls: Some("TLSv1.3"),
            principal: Some("hmac:1234".into()),
            client_id: Some("app\"quoted\"".into()),
            method: "GET".into(),
            route: Some("patient-read".into()),
            template: Some("/fhir/Patient/{id}".into()),
            purpose: Some("care".into()),
            category: Some("checkup"),
            decision: "allow",
            reason: None,
            status: 200,
            bytes_in: 0,
            bytes_out: Some(512),
            upstream_us: Some(900),
            total_us: 1200,
            rules: vec!["sqli-1".into()],
            changes: vec!["neutralised:note.text".into()],
        }
    }

    #[test]
    fn access_bodies_are_canonical_json() {
        let mut out = Vec::new();
        sample().write_body(7, "gw-1", &mut out).unwrap();
        let sorted: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            serde_json::to_vec(&sorted).unwrap(),
            out,
            "keys must be in sorted order"
        );
        assert_eq!(sorted["seq"], 7);
        assert_eq!(sorted["template"], "/fhir/Patient/{id}");
    }

    #[test]
    fn state_bodies_are_canonical_json_with_the_envelope() {
        let event = StateEvent::PolicyLoaded {
            version: "ab".into(),
            source: "p.toml".into(),
            trigger: "start".into(),
            previous: None,
        };
        let mut out = Vec::new();
        event
            .write_body(3, "2026-11-25T10:00:00.000000Z", "gw", &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{"event":"policy_loaded","log":"state","node":"gw","seq":3,"source":"p.toml","time":"2026-11-25T10:00:00.000000Z","trigger":"start","v":1,"version":"ab"}"#
        );
    }

    #[test]
    fn a_sealed_line_parses_back_and_its_chain_covers_the_record() {
        let mut out = b"previous line\n".to_vec();
        let start = out.len();
        sample().write_body(7, "gw", &mut out).unwrap();
        let record = out[start..].to_vec();
        let chain = seal_line(&GENESIS_CHAIN, &mut out, start);
        let line = &out[start..out.len() - 1];
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.chain, chain);
        assert_eq!(parsed.record, record.as_slice());
        assert_eq!(parsed.seq, 7);
        assert_eq!(chain, chain_hash(&GENESIS_CHAIN, &record));
        assert_eq!(
            string_field(parsed.record, b"\"time\":"),
            Some("2026-11-25T10:00:00.000001Z")
        );
        // Any change of layout is refused rather than guessed at.
        let mut bad = line.to_vec();
        bad.insert(1, b' ');
        assert_eq!(parse_line(&bad), None);
        assert_eq!(parse_line(&line[..line.len() - 1]), None);
    }

    #[test]
    fn time_format_is_fixed_width() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.000_006 UTC);
        assert_eq!(format_time(t), "2026-01-02T03:04:05.000006Z");
        assert_eq!(now_rfc3339().len(), 27);
    }
}
