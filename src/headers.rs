//! The header operations the request steps need, over any header container: pingora's request
//! and response headers in the proxy (implemented in `proxy.rs`, which keeps pingora's
//! header-case map in step), and a plain `HeaderMap` in tests and tools.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// `X-Request-Id`: the gateway's id for a request, sent to client and upstream.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Read and edit a set of headers.
pub trait HeaderEdit {
    /// The headers as they are now.
    fn headers(&self) -> &HeaderMap;
    /// Set a header, replacing every value it had.
    fn set(&mut self, name: HeaderName, value: HeaderValue);
    /// Remove every value of a header.
    fn remove(&mut self, name: &str);
}

impl HeaderEdit for HeaderMap {
    fn headers(&self) -> &HeaderMap {
        self
    }
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
    fn remove(&mut self, name: &str) {
        // `HeaderMap::remove` removes every value of the name.
        HeaderMap::remove(self, name);
    }
}
