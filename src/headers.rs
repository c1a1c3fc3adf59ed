//! The header operations the request steps need, over any header container: pingora's request
//! and response headers in the proxy (implemented in `proxy.rs`, which keeps pingora's
//! header-case map in step), and a plain `HeaderMap` in tests and tools.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// `X-Request-Id`: the gateway's id for a request, sent to client and upstream.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `PHR-Neutralised`: the body fields the gateway rewrote (R-WAF-4) or the files it disarmed
/// (R-WAF-2). Only the gateway sets it, towards the upstream and the client alike.
pub const PHR_NEUTRALISED: HeaderName = HeaderName::from_static("phr-neutralised");

/// A header name as CGI, WSGI and Rack servers read it: `_` as `-` (`X_PHR_Subject` and
/// `X-PHR-Subject` both become `HTTP_X_PHR_SUBJECT`). Borrowed when the name holds no `_`.
pub fn as_cgi_reads(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains('_') {
        std::borrow::Cow::Owned(name.replace('_', "-"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Read and edit a set of headers.
pub trait HeaderEdit {
    /// The headers as they are now.
    fn headers(&self) -> &HeaderMap;
    /// Set a header, replacing every value it had.
    fn set(&mut self, name: HeaderName, value: HeaderValue);
    /// Remove every value of a header.
    fn remove(&mut self, name: &HeaderName);

    /// Remove every header whose (lower-case) name `unwanted` picks.
    ///
    /// One pass over the names present: a request or response carries a handful of headers,
    /// while the lists of names to strip are long, and asking the map for each of those is a
    /// hash and a probe per name (twice in pingora's headers, which keep a case map beside the
    /// `HeaderMap`). Nothing is allocated unless a header goes.
    fn strip(&mut self, unwanted: impl Fn(&str) -> bool)
    where
        Self: Sized,
    {
        let headers = self.headers();
        if !headers.keys().any(|name| unwanted(name.as_str())) {
            return;
        }
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| unwanted(name.as_str()))
            .cloned()
            .collect();
        for name in &doomed {
            self.remove(name);
        }
    }
}

impl HeaderEdit for HeaderMap {
    fn headers(&self) -> &HeaderMap {
        self
    }
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
    fn remove(&mut self, name: &HeaderName) {
        // `HeaderMap::remove` removes every value of the name.
        HeaderMap::remove(self, name);
    }
}
