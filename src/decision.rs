//! The outcome of every request step: allow, or refuse with a stable reason code.
//!
//! A reason code is the contract shared by the client (the `type` and `reason` members of the
//! RFC 9457 problem+json body), the audit record, the metrics label and the docs. Codes never
//! change meaning once published; new steps add new variants.

use serde::Serialize;

/// Why a request was refused. Each variant has one stable code, one HTTP status and one title.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No route declares this path (default deny, R-AZ-1, R-NET-2).
    RouteNotFound,
    /// A route declares this path, but not this method.
    RouteMethodNotAllowed,
    /// The request names a host the public listener does not serve (`[listeners] hosts`,
    /// R-NET-2): 421 Misdirected Request.
    RouteHostNotServed,
    /// The path has dot-segments, encoded slashes or other shapes a backend could read
    /// differently from the router, so routing on it could be bypassed.
    RoutePathNotCanonical,
    /// `Content-Length` together with `Transfer-Encoding` (request smuggling, R-WAF-3).
    ProtocolLengthWithTransferEncoding,
    /// More than one `Content-Length` value.
    ProtocolDuplicateContentLength,
    /// A `Content-Length` that is not a plain decimal number.
    ProtocolInvalidContentLength,
    /// A `Transfer-Encoding` other than exactly `chunked`.
    ProtocolUnsupportedTransferEncoding,
    /// The request body broke its own framing (a bad chunk size, say) while being read.
    ProtocolMalformedBody,
    /// The client stopped sending the request before it was complete, for longer than allowed.
    ProtocolRequestTimeout,
    /// The route needs a verified identity and the request has none (R-AUTH-1).
    IdentityMissing,
    /// The bearer token is malformed, or its header is one the gateway does not accept
    /// (an algorithm off the list, a critical extension, a key source, a wrong `typ`).
    IdentityInvalidToken,
    /// A bearer token sent outside the `Authorization` header (`access_token` in the query or
    /// a form body), which the gateway would not verify but a backend might read (RFC 6750
    /// section 3.1 `invalid_request`).
    IdentityTokenOutsideHeader,
    /// The token's signature does not verify with any key of its issuer.
    IdentityInvalidSignature,
    /// The token has expired.
    IdentityExpired,
    /// The token's `nbf` or `iat` lies in the future.
    IdentityNotYetValid,
    /// The token is from an unknown issuer or for another audience.
    IdentityWrongAudience,
    /// The route needs multi-factor evidence the token does not show (R-AUTH-2).
    IdentityMfaRequired,
    /// The route needs a more recent or stronger sign-in (RFC 9470).
    IdentityStepUpRequired,
    /// The session was idle longer than the policy allows and is locked (R-AUTH-3).
    IdentitySessionIdle,
    /// The session passed its absolute lifetime (R-AUTH-3).
    IdentitySessionExpired,
    /// The session, the user's sessions or the token were ended (logout, revocation).
    IdentitySessionRevoked,
    /// Too many invalid tokens from this address; it waits out a cool-down (R-AUTH-5).
    IdentityTooManyFailures,
    /// The client's network is on the deny list, or off an allow list (R-NET-1).
    NetworkDenied,
    /// A rate limit (per client, subject or route) is used up (R-NET-3).
    RateLimited,
    /// An operator placed an emergency stop: user routes answer 503 (R-NET-3).
    GatewayStopped,
    /// The gateway is in read-only mode: only GET and HEAD pass (R-NET-3).
    GatewayReadOnly,
    /// An operator stopped the use of this subject's data (R-AZ-7).
    AccessSubjectStopped,
    /// The token lacks a scope the route requires (R-AZ-1).
    AccessScopeMissing,
    /// The token carries none of the roles the route requires (R-AZ-1).
    AccessRoleMissing,
    /// The request is for another subject's data than the caller's own (R-AZ-1).
    AccessSubjectMismatch,
    /// The stated purpose is missing, not one the route serves, or not one the token was
    /// issued for (R-AZ-2).
    AccessPurposeNotAllowed,
    /// Health data is sent in without the data subject's acquisition consent (R-AZ-3).
    AccessConsentRequired,
    /// A registered recipient asks for a subject's data without the subject's live provision
    /// consent for that recipient, purpose and category (R-AZ-4).
    AccessProvisionConsentRequired,
    /// A registered recipient's compliance confirmation has expired (R-AZ-8).
    AccessRecipientUnconfirmed,
    /// On a FHIR route: an interaction the gateway cannot map to resource type, letter and
    /// patient (an operation, a whole-system search, a malformed Bundle).
    AccessFhirUnsupported,
    /// A request body the gateway must read whole (a FHIR Bundle) is larger than it reads.
    ProtocolBodyTooLarge,
    /// Input inspection found an attack in the request (R-WAF-1).
    InspectBlocked,
    /// An uploaded file the route does not accept, an archive, or a file that is not what its
    /// declared type says (R-WAF-2).
    InspectFileRefused,
    /// An uploaded file that could not be taken apart and rebuilt (R-WAF-2).
    InspectFileUnrebuildable,
    /// A JSON body nested deeper than `limits.max_json_depth` (R-WAF-3).
    ProtocolJsonTooDeep,
    /// An XML body whose elements nest deeper than `limits.max_json_depth` (R-WAF-3).
    ProtocolXmlTooDeep,
    /// A line of the request head ended in a bare LF (R-WAF-3).
    ProtocolBareLineFeed,
    /// The request target is longer than `limits.max_uri_bytes` (R-WAF-3).
    ProtocolUriTooLong,
    /// More query parameters than `limits.max_query_params` (R-WAF-3).
    ProtocolTooManyParameters,
    /// More header fields than `limits.max_headers` (R-WAF-3).
    ProtocolTooManyHeaders,
    /// Header fields larger than `limits.max_header_bytes` together (R-WAF-3).
    ProtocolHeadersTooLarge,
    /// A `GET` or `HEAD` that declares a body (R-WAF-3).
    ProtocolBodyNotAllowed,
    /// A body without a `Content-Type` (R-WAF-3).
    ProtocolContentTypeMissing,
    /// A request head pingora's HTTP/1 parser refused, before any gateway step ran; the
    /// gateway's answer stands in for pingora's (`head_refusals`; R-WAF-3, R-LOG-1).
    ProtocolUnparsableHead,
    /// An HTTP/2 stream the HTTP/2 layers reset as malformed before any gateway step ran (a
    /// header block RFC 9113 section 8.1.1 calls malformed, a body longer than its length);
    /// the gateway's answer stands in for the reset (`head_refusals`; R-WAF-3, R-LOG-1).
    ProtocolMalformedStream,
    /// A `CONNECT` request: the gateway is a reverse proxy and opens no tunnels (R-WAF-3).
    ProtocolConnectRefused,
    /// A `Host` that is no host name or address, more than one, or none on HTTP/1 (R-WAF-3).
    ProtocolInvalidHost,
    /// A request target holding a fragment (`#`), which no client sends (R-WAF-3).
    ProtocolInvalidTarget,
    /// A request to the plain listener, answered only with `308` to the same target over
    /// https (R-TLS-1); recorded so the plain origin's traffic is in the trail too.
    ProtocolHttpsRequired,
    /// A consent call's body or path is not valid.
    ConsentInvalidRequest,
    /// No live consent of the caller has that id.
    ConsentNotFound,
    /// The upstream could not be reached or its TLS identity did not verify (R-TLS-4).
    UpstreamUnavailable,
    /// The audit store cannot write, and the policy fails closed: nothing is served without
    /// its record (R-LOG-1).
    AuditUnavailable,
    /// The gateway failed in a way the client cannot fix.
    GatewayInternal,
}

impl Reason {
    /// Every reason, for documentation and exhaustive tests.
    pub const ALL: &'static [Reason] = &[
        Reason::RouteNotFound,
        Reason::RouteMethodNotAllowed,
        Reason::RouteHostNotServed,
        Reason::RoutePathNotCanonical,
        Reason::ProtocolLengthWithTransferEncoding,
        Reason::ProtocolDuplicateContentLength,
        Reason::ProtocolInvalidContentLength,
        Reason::ProtocolUnsupportedTransferEncoding,
        Reason::ProtocolMalformedBody,
        Reason::ProtocolRequestTimeout,
        Reason::IdentityMissing,
        Reason::IdentityInvalidToken,
        Reason::IdentityTokenOutsideHeader,
        Reason::IdentityInvalidSignature,
        Reason::IdentityExpired,
        Reason::IdentityNotYetValid,
        Reason::IdentityWrongAudience,
        Reason::IdentityMfaRequired,
        Reason::IdentityStepUpRequired,
        Reason::IdentitySessionIdle,
        Reason::IdentitySessionExpired,
        Reason::IdentitySessionRevoked,
        Reason::IdentityTooManyFailures,
        Reason::NetworkDenied,
        Reason::RateLimited,
        Reason::GatewayStopped,
        Reason::GatewayReadOnly,
        Reason::AccessSubjectStopped,
        Reason::AccessScopeMissing,
        Reason::AccessRoleMissing,
        Reason::AccessSubjectMismatch,
        Reason::AccessPurposeNotAllowed,
        Reason::AccessConsentRequired,
        Reason::AccessProvisionConsentRequired,
        Reason::AccessRecipientUnconfirmed,
        Reason::AccessFhirUnsupported,
        Reason::ProtocolBodyTooLarge,
        Reason::InspectBlocked,
        Reason::InspectFileRefused,
        Reason::InspectFileUnrebuildable,
        Reason::ProtocolJsonTooDeep,
        Reason::ProtocolXmlTooDeep,
        Reason::ProtocolBareLineFeed,
        Reason::ProtocolUriTooLong,
        Reason::ProtocolTooManyParameters,
        Reason::ProtocolTooManyHeaders,
        Reason::ProtocolHeadersTooLarge,
        Reason::ProtocolBodyNotAllowed,
        Reason::ProtocolContentTypeMissing,
        Reason::ProtocolUnparsableHead,
        Reason::ProtocolMalformedStream,
        Reason::ProtocolConnectRefused,
        Reason::ProtocolInvalidHost,
        Reason::ProtocolInvalidTarget,
        Reason::ProtocolHttpsRequired,
        Reason::ConsentInvalidRequest,
        Reason::ConsentNotFound,
        Reason::UpstreamUnavailable,
        Reason::AuditUnavailable,
        Reason::GatewayInternal,
    ];

    /// The stable, dotted reason code (`family.detail`).
    pub const fn code(self) -> &'static str {
        match self {
            Reason::RouteNotFound => "route.not_found",
            Reason::RouteMethodNotAllowed => "route.method_not_allowed",
            Reason::RouteHostNotServed => "route.host_not_served",
            Reason::RoutePathNotCanonical => "route.path_not_canonical",
            Reason::ProtocolLengthWithTransferEncoding => "protocol.length_with_transfer_encoding",
            Reason::ProtocolDuplicateContentLength => "protocol.duplicate_content_length",
            Reason::ProtocolInvalidContentLength => "protocol.invalid_content_length",
            Reason::ProtocolUnsupportedTransferEncoding => "protocol.unsupported_transfer_encoding",
            Reason::ProtocolMalformedBody => "protocol.malformed_body",
            Reason::ProtocolRequestTimeout => "protocol.request_timeout",
            Reason::IdentityMissing => "identity.missing",
            Reason::IdentityInvalidToken => "identity.invalid_token",
            Reason::IdentityTokenOutsideHeader => "identity.token_outside_header",
            Reason::IdentityInvalidSignature => "identity.invalid_signature",
            Reason::IdentityExpired => "identity.expired",
            Reason::IdentityNotYetValid => "identity.not_yet_valid",
            Reason::IdentityWrongAudience => "identity.wrong_audience",
            Reason::IdentityMfaRequired => "identity.mfa_required",
            Reason::IdentityStepUpRequired => "identity.step_up_required",
            Reason::IdentitySessionIdle => "identity.session_idle",
            Reason::IdentitySessionExpired => "identity.session_expired",
            Reason::IdentitySessionRevoked => "identity.session_revoked",
            Reason::IdentityTooManyFailures => "identity.too_many_failures",
            Reason::NetworkDenied => "network.denied",
            Reason::RateLimited => "limits.rate_limited",
            Reason::GatewayStopped => "gateway.stopped",
            Reason::GatewayReadOnly => "gateway.read_only",
            Reason::AccessSubjectStopped => "access.subject_stopped",
            Reason::AccessScopeMissing => "access.scope_missing",
            Reason::AccessRoleMissing => "access.role_missing",
            Reason::AccessSubjectMismatch => "access.subject_mismatch",
            Reason::AccessPurposeNotAllowed => "access.purpose_not_allowed",
            Reason::AccessConsentRequired => "access.consent_required",
            Reason::AccessProvisionConsentRequired => "access.provision_consent_required",
            Reason::AccessRecipientUnconfirmed => "access.recipient_unconfirmed",
            Reason::AccessFhirUnsupported => "access.fhir_unsupported",
            Reason::ProtocolBodyTooLarge => "protocol.body_too_large",
            Reason::InspectBlocked => "inspect.blocked",
            Reason::InspectFileRefused => "inspect.file_refused",
            Reason::InspectFileUnrebuildable => "inspect.file_unrebuildable",
            Reason::ProtocolJsonTooDeep => "protocol.json_too_deep",
            Reason::ProtocolXmlTooDeep => "protocol.xml_too_deep",
            Reason::ProtocolBareLineFeed => "protocol.bare_line_feed",
            Reason::ProtocolUriTooLong => "protocol.uri_too_long",
            Reason::ProtocolTooManyParameters => "protocol.too_many_parameters",
            Reason::ProtocolTooManyHeaders => "protocol.too_many_headers",
            Reason::ProtocolHeadersTooLarge => "protocol.headers_too_large",
            Reason::ProtocolBodyNotAllowed => "protocol.body_not_allowed",
            Reason::ProtocolContentTypeMissing => "protocol.content_type_missing",
            Reason::ProtocolUnparsableHead => "protocol.unparsable_head",
            Reason::ProtocolMalformedStream => "protocol.malformed_stream",
            Reason::ProtocolConnectRefused => "protocol.connect_refused",
            Reason::ProtocolInvalidHost => "protocol.invalid_host",
            Reason::ProtocolInvalidTarget => "protocol.invalid_target",
            Reason::ProtocolHttpsRequired => "protocol.https_required",
            Reason::ConsentInvalidRequest => "consent.invalid_request",
            Reason::ConsentNotFound => "consent.not_found",
            Reason::UpstreamUnavailable => "upstream.unavailable",
            Reason::AuditUnavailable => "audit.unavailable",
            Reason::GatewayInternal => "gateway.internal",
        }
    }

    /// The HTTP status a refusal with this reason is answered with.
    pub const fn status(self) -> u16 {
        match self {
            Reason::RouteNotFound => 404,
            Reason::RouteMethodNotAllowed => 405,
            Reason::RouteHostNotServed => 421,
            Reason::RoutePathNotCanonical
            | Reason::ProtocolLengthWithTransferEncoding
            | Reason::ProtocolDuplicateContentLength
            | Reason::ProtocolInvalidContentLength
            | Reason::ProtocolUnsupportedTransferEncoding
            | Reason::ProtocolMalformedBody => 400,
            Reason::ProtocolRequestTimeout => 408,
            Reason::IdentityTokenOutsideHeader => 400,
            Reason::IdentityMissing
            | Reason::IdentityInvalidToken
            | Reason::IdentityInvalidSignature
            | Reason::IdentityExpired
            | Reason::IdentityNotYetValid
            | Reason::IdentityWrongAudience
            | Reason::IdentityMfaRequired
            | Reason::IdentityStepUpRequired
            | Reason::IdentitySessionIdle
            | Reason::IdentitySessionExpired
            | Reason::IdentitySessionRevoked => 401,
            Reason::IdentityTooManyFailures | Reason::RateLimited => 429,
            Reason::NetworkDenied
            | Reason::AccessSubjectStopped
            | Reason::AccessScopeMissing
            | Reason::AccessRoleMissing
            | Reason::AccessSubjectMismatch
            | Reason::AccessPurposeNotAllowed
            | Reason::AccessConsentRequired
            | Reason::AccessProvisionConsentRequired
            | Reason::AccessRecipientUnconfirmed
            | Reason::AccessFhirUnsupported => 403,
            Reason::ProtocolBodyTooLarge => 413,
            Reason::InspectBlocked => 403,
            Reason::InspectFileRefused => 415,
            Reason::InspectFileUnrebuildable => 422,
            Reason::ProtocolJsonTooDeep
            | Reason::ProtocolXmlTooDeep
            | Reason::ProtocolBareLineFeed => 400,
            Reason::ProtocolUriTooLong => 414,
            Reason::ProtocolTooManyParameters
            | Reason::ProtocolBodyNotAllowed
            | Reason::ProtocolInvalidHost
            | Reason::ProtocolInvalidTarget => 400,
            Reason::ProtocolTooManyHeaders | Reason::ProtocolHeadersTooLarge => 431,
            Reason::ProtocolContentTypeMissing => 415,
            Reason::ProtocolUnparsableHead | Reason::ProtocolMalformedStream => 400,
            Reason::ProtocolConnectRefused => 405,
            Reason::ProtocolHttpsRequired => 308,
            Reason::ConsentInvalidRequest => 400,
            Reason::ConsentNotFound => 404,
            Reason::GatewayStopped | Reason::GatewayReadOnly => 503,
            Reason::UpstreamUnavailable => 502,
            Reason::AuditUnavailable => 503,
            Reason::GatewayInternal => 500,
        }
    }

    /// A short human title for the problem body.
    pub const fn title(self) -> &'static str {
        match self {
            Reason::RouteNotFound => "No such resource",
            Reason::RouteMethodNotAllowed => "Method not allowed on this resource",
            Reason::RouteHostNotServed => "Host not served here",
            Reason::RoutePathNotCanonical => "Request path is not in canonical form",
            Reason::ProtocolLengthWithTransferEncoding => {
                "Content-Length and Transfer-Encoding together"
            }
            Reason::ProtocolDuplicateContentLength => "More than one Content-Length",
            Reason::ProtocolInvalidContentLength => "Content-Length is not a number",
            Reason::ProtocolUnsupportedTransferEncoding => "Transfer-Encoding not supported",
            Reason::ProtocolMalformedBody => "Request body is malformed",
            Reason::ProtocolRequestTimeout => "Request not received in time",
            Reason::IdentityMissing => "Authentication required",
            Reason::IdentityInvalidToken => "Invalid bearer token",
            Reason::IdentityTokenOutsideHeader => "Bearer token outside the Authorization header",
            Reason::IdentityInvalidSignature => "Token signature does not verify",
            Reason::IdentityExpired => "Token expired",
            Reason::IdentityNotYetValid => "Token not valid yet",
            Reason::IdentityWrongAudience => "Token not for this gateway",
            Reason::IdentityMfaRequired => "Multi-factor authentication required",
            Reason::IdentityStepUpRequired => "A more recent or stronger sign-in is required",
            Reason::IdentitySessionIdle => "Session locked after inactivity",
            Reason::IdentitySessionExpired => "Session lifetime reached",
            Reason::IdentitySessionRevoked => "Session ended",
            Reason::IdentityTooManyFailures => "Too many failed sign-in attempts",
            Reason::NetworkDenied => "Network not allowed",
            Reason::RateLimited => "Too many requests",
            Reason::GatewayStopped => "Service stopped for maintenance",
            Reason::GatewayReadOnly => "Service is read-only for now",
            Reason::AccessSubjectStopped => "Use of this data is stopped",
            Reason::AccessScopeMissing => "Insufficient scope",
            Reason::AccessRoleMissing => "Role required",
            Reason::AccessSubjectMismatch => "Not this subject's data",
            Reason::AccessPurposeNotAllowed => "Purpose of use not allowed",
            Reason::AccessConsentRequired => "Consent required",
            Reason::AccessProvisionConsentRequired => "Provision consent required",
            Reason::AccessRecipientUnconfirmed => "Recipient's compliance confirmation expired",
            Reason::AccessFhirUnsupported => "FHIR interaction the gateway cannot authorise",
            Reason::ProtocolBodyTooLarge => "Request body too large",
            Reason::InspectBlocked => "Request refused by input inspection",
            Reason::InspectFileRefused => "Uploaded file not accepted",
            Reason::InspectFileUnrebuildable => "Uploaded file could not be rebuilt",
            Reason::ProtocolJsonTooDeep => "JSON body nested too deeply",
            Reason::ProtocolXmlTooDeep => "XML body nested too deeply",
            Reason::ProtocolBareLineFeed => "Request head line ends without CR",
            Reason::ProtocolUriTooLong => "Request target too long",
            Reason::ProtocolTooManyParameters => "Too many query parameters",
            Reason::ProtocolTooManyHeaders => "Too many header fields",
            Reason::ProtocolHeadersTooLarge => "Header fields too large",
            Reason::ProtocolBodyNotAllowed => "A GET or HEAD request carries no body",
            Reason::ProtocolContentTypeMissing => "Request body without Content-Type",
            Reason::ProtocolUnparsableHead => "Request head could not be parsed",
            Reason::ProtocolMalformedStream => "Malformed HTTP/2 request",
            Reason::ProtocolConnectRefused => "CONNECT is not served",
            Reason::ProtocolInvalidHost => "Invalid Host",
            Reason::ProtocolInvalidTarget => "Invalid request target",
            Reason::ProtocolHttpsRequired => "Use https",
            Reason::ConsentInvalidRequest => "Invalid consent request",
            Reason::ConsentNotFound => "No such consent",
            Reason::UpstreamUnavailable => "Upstream unavailable",
            Reason::AuditUnavailable => "Audit trail unavailable",
            Reason::GatewayInternal => "Gateway error",
        }
    }

    /// Whether the connection must be closed after the answer: when the request's framing is
    /// ambiguous, whatever follows on the connection cannot be trusted to be a new request.
    pub const fn closes_connection(self) -> bool {
        matches!(
            self,
            Reason::ProtocolLengthWithTransferEncoding
                | Reason::ProtocolDuplicateContentLength
                | Reason::ProtocolInvalidContentLength
                | Reason::ProtocolUnsupportedTransferEncoding
                | Reason::ProtocolMalformedBody
                | Reason::ProtocolBareLineFeed
                | Reason::ProtocolRequestTimeout
                | Reason::ProtocolConnectRefused
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// How a request ended: the one value logs (and the audit record) report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to the upstream, which answered.
    Forwarded,
    /// Refused, or failed, with a reason the client was told.
    Refused(Reason),
    /// The client's connection broke before an answer could be sent.
    ConnectionLost,
}

impl Outcome {
    /// The audit record's `decision`: `allow`, `refuse` or `lost`.
    pub const fn decision(self) -> &'static str {
        match self {
            Outcome::Forwarded => "allow",
            Outcome::Refused(_) => "refuse",
            Outcome::ConnectionLost => "lost",
        }
    }

    /// The audit record's `reason`: none for forwarded requests.
    pub const fn reason(self) -> Option<&'static str> {
        match self {
            Outcome::Forwarded => None,
            other => Some(other.code()),
        }
    }

    /// The reason code (`allow` when forwarded, `client.connection_lost` when nobody was left
    /// to answer).
    pub const fn code(self) -> &'static str {
        match self {
            Outcome::Forwarded => "allow",
            Outcome::Refused(reason) => reason.code(),
            Outcome::ConnectionLost => "client.connection_lost",
        }
    }
}

/// A refusal: the reason plus what the client needs to know to fix the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The stable reason.
    pub reason: Reason,
    /// Plain-language detail for the client. Never holds another subject's data.
    pub detail: String,
    /// For 405: the methods the route does allow (sent as the `Allow` header).
    pub allow: Option<String>,
    /// For 401: the `WWW-Authenticate` challenge (RFC 6750, RFC 9470).
    pub challenge: Option<String>,
    /// Seconds to send as `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// For rate-limit refusals: the `RateLimit-Policy` and `RateLimit` headers.
    pub rate_limit: Option<Box<crate::limits::RateLimitHeaders>>,
}

impl Refusal {
    /// A refusal with a detail message.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            detail: detail.into(),
            allow: None,
            challenge: None,
            retry_after: None,
            rate_limit: None,
        }
    }
}

/// The outcome of the request pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward the request.
    Allow,
    /// Answer the client with a problem and never forward.
    Refuse(Refusal),
}

impl Decision {
    /// The reason code, `"allow"` when allowed.
    pub fn code(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Refuse(r) => r.reason.code(),
        }
    }
}

/// The RFC 9457 problem document sent with every refusal.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    reason: &'static str,
    request_id: &'a str,
}

/// The media type of refusal bodies.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Render the problem+json body for a refusal. The `type` is a URN built from the reason code,
/// so clients can dispatch on it without the gateway having to host documentation pages.
pub fn problem_body(refusal: &Refusal, request_id: &str) -> Vec<u8> {
    let problem = Problem {
        kind: format!("urn:phr-gateway:problem:{}", refusal.reason.code()),
        title: refusal.reason.title(),
        status: refusal.reason.status(),
        detail: &refusal.detail,
        reason: refusal.reason.code(),
        request_id,
    };
    // Serialising a struct of strings and integers cannot fail.
    serde_json::to_vec(&problem).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_dotted() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            assert!(
                seen.insert(reason.code()),
                "duplicate code {}",
                reason.code()
            );
            assert!(
                reason.code().contains('.'),
                "{} has no family",
                reason.code()
            );
            // The plain listener's redirect is the one answer that is no error.
            let redirect = *reason == Reason::ProtocolHttpsRequired && reason.status() == 308;
            assert!(
                (400..600).contains(&reason.status()) || redirect,
                "{reason}"
            );
        }
    }

    /// docs/policy.md lists every code with its status, so that an operator reading a record
    /// or a problem body can look the code up.
    #[test]
    fn every_code_is_documented_with_its_status() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policy.md"))
            .expect("docs/policy.md");
        for reason in Reason::ALL {
            let row = format!("| `{}` | {} |", reason.code(), reason.status());
            assert!(
                doc.contains(&row),
                "docs/policy.md has no row starting `{row}`"
            );
        }
    }

    #[test]
    fn problem_body_carries_code_and_request_id() {
        let refusal = Refusal::new(Reason::RouteNotFound, "no route for GET /x");
        let body: serde_json::Value =
            serde_json::from_slice(&problem_body(&refusal, "req-1")).unwrap_or_default();
        assert_eq!(body["type"], "urn:phr-gateway:problem:route.not_found");
        assert_eq!(body["reason"], "route.not_found");
        assert_eq!(body["status"], 404);
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["detail"], "no route for GET /x");
    }
}
