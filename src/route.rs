//! The compiled route table and the routing step (default deny, R-AZ-1, R-NET-2).
//!
//! Paths are matched by a radix tree (matchit), so the cost of a lookup depends on the path's
//! length, not on the number of routes. A path no route declares is `route.not_found`; a
//! declared path with an undeclared method is `route.method_not_allowed`.

use std::sync::Arc;

use std::collections::HashMap;

use http::Method;

use crate::decision::{Reason, Refusal};
use crate::policy::DataCategory;

/// One route, compiled.
#[derive(Debug)]
pub struct Route {
    /// The policy's stable route id.
    pub id: Arc<str>,
    /// The declared path pattern, e.g. `/fhir/Patient/{id}`: this, not the raw path, is what
    /// records carry, since the raw path may hold a patient id (R-LOG-5).
    pub pattern: Arc<str>,
    /// Declared methods (HEAD is added where GET is declared).
    pub methods: Vec<Method>,
    /// Index of the upstream in the snapshot.
    pub upstream: usize,
    /// The data category.
    pub category: DataCategory,
    /// Whether the route needs no identity.
    pub anonymous: bool,
    /// Whether a verified identity must show multi-factor evidence (R-AUTH-2).
    pub mfa: bool,
    /// Freshness or strength of sign-in the route asks for (RFC 9470).
    pub step_up: crate::identity::StepUp,
    /// When not empty, only these networks may use the route (R-NET-1).
    pub allow_from: crate::net::NetworkList,
    /// Scopes, roles and the data subject (R-AZ-1).
    pub access: crate::access::RouteAccess,
    /// Input inspection (R-WAF-1).
    pub inspect: crate::inspect::RouteInspection,
}

struct PathEntry {
    /// (method, index into `routes`), a handful at most.
    methods: Vec<(Method, usize)>,
    /// The `Allow` header value for 405 answers.
    allow: String,
}

/// The route table of one policy snapshot.
pub struct RouteTable {
    router: matchit::Router<usize>,
    paths: Vec<PathEntry>,
    routes: Vec<Route>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("routes", &self.routes)
            .finish()
    }
}

/// A successful lookup.
pub struct RouteMatch<'t, 'p> {
    /// Index of the route in [`RouteTable::routes`].
    pub index: usize,
    /// The route.
    pub route: &'t Route,
    /// The values of the pattern's named parameters.
    pub params: matchit::Params<'t, 'p>,
}

/// The result of looking a request up.
pub enum Lookup<'t, 'p> {
    /// A route matched path and method.
    Found(RouteMatch<'t, 'p>),
    /// The path is declared, the method is not; `allow` lists the declared methods.
    MethodNotAllowed {
        /// Value for the `Allow` header.
        allow: &'t str,
    },
    /// No route declares this path.
    NotFound,
}

impl RouteTable {
    /// All routes, in policy order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Find the route for a method and an already canonical path (no query string).
    pub fn lookup<'t, 'p>(&'t self, method: &Method, path: &'p str) -> Lookup<'t, 'p> {
        let Ok(found) = self.router.at(path) else {
            return Lookup::NotFound;
        };
        let entry = &self.paths[*found.value];
        match entry.methods.iter().find(|(m, _)| m == method) {
            Some(&(_, index)) => Lookup::Found(RouteMatch {
                index,
                route: &self.routes[index],
                params: found.params,
            }),
            None => Lookup::MethodNotAllowed {
                allow: &entry.allow,
            },
        }
    }

    /// The routing step: a route, or the refusal that answers the request.
    pub fn route<'t, 'p>(
        &'t self,
        method: &Method,
        path: &'p str,
    ) -> Result<RouteMatch<'t, 'p>, Refusal> {
        check_canonical(path)?;
        match self.lookup(method, path) {
            Lookup::Found(m) => Ok(m),
            Lookup::MethodNotAllowed { allow } => Err(Refusal {
                reason: Reason::RouteMethodNotAllowed,
                detail: format!("{method} is not declared for this path; allowed: {allow}"),
                allow: Some(allow.to_owned()),
                ..Refusal::new(Reason::RouteMethodNotAllowed, "")
            }),
            Lookup::NotFound => Err(Refusal::new(
                Reason::RouteNotFound,
                "no route is declared for this path",
            )),
        }
    }
}

/// Builds a [`RouteTable`], refusing patterns that conflict.
#[derive(Default)]
pub struct RouteTableBuilder {
    router: matchit::Router<usize>,
    by_pattern: HashMap<Arc<str>, usize>,
    paths: Vec<PathEntry>,
    routes: Vec<Route>,
}

impl RouteTableBuilder {
    /// Add a route. The error says what is wrong with it, for a policy diagnostic.
    pub fn add(&mut self, mut route: Route) -> Result<(), String> {
        validate_pattern(&route.pattern)?;
        if route.methods.contains(&Method::GET) && !route.methods.contains(&Method::HEAD) {
            route.methods.push(Method::HEAD);
        }
        if let Some(other) = self.routes.iter().find(|r| r.id == route.id) {
            return Err(format!(
                "route id `{}` is used twice (also for `{}`); ids must be unique",
                route.id, other.pattern
            ));
        }
        let path_index = match self.by_pattern.get(&route.pattern) {
            Some(&i) => i,
            None => {
                let i = self.paths.len();
                self.router
                    .insert(route.pattern.to_string(), i)
                    .map_err(|e| format!("path `{}` cannot be routed: {e}", route.pattern))?;
                self.by_pattern.insert(route.pattern.clone(), i);
                self.paths.push(PathEntry {
                    methods: Vec::new(),
                    allow: String::new(),
                });
                i
            }
        };
        let index = self.routes.len();
        let entry = &mut self.paths[path_index];
        for method in &route.methods {
            if let Some(&(_, other)) = entry.methods.iter().find(|(m, _)| m == method) {
                return Err(format!(
                    "{method} {} is already declared by route `{}`",
                    route.pattern, self.routes[other].id
                ));
            }
            entry.methods.push((method.clone(), index));
        }
        entry.allow = entry
            .methods
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        self.routes.push(route);
        Ok(())
    }

    /// The finished table.
    pub fn build(self) -> RouteTable {
        RouteTable {
            router: self.router,
            paths: self.paths,
            routes: self.routes,
        }
    }
}

fn validate_pattern(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with('/') {
        return Err(format!("path `{pattern}` must start with `/`"));
    }
    if pattern.contains('?') || pattern.contains('#') {
        return Err(format!(
            "path `{pattern}` must not hold a query or fragment; routes match the path only"
        ));
    }
    if let Err(why) = check_canonical(&strip_params(pattern)) {
        return Err(format!("path `{pattern}` is not canonical: {}", why.detail));
    }
    Ok(())
}

/// The pattern with each `{param}` replaced by a plain segment, to check its literal parts.
fn strip_params(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_param = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('p');
            }
            '}' => in_param = false,
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// Refuse paths a backend could read differently from the router: dot-segments, empty
/// segments, backslashes, percent-encoded slash, backslash, dot or NUL, a percent-encoded
/// letter, digit, `-`, `_` or `~`, and a `%` that starts no escape. Routing on such a path
/// could let `/public/..%2Ffhir/Patient/1` reach a route the table never allowed, and
/// `/fhir/%4Fbservation` pass a catch-all route while the backend, which decodes it (RFC 3986
/// section 6.2.2.2 calls the two the same), serves `/fhir/Observation`; IIS also reads
/// `%u004F` as `O`.
pub fn check_canonical(path: &str) -> Result<(), Refusal> {
    let refuse = |what: &str| {
        Err(Refusal::new(
            Reason::RoutePathNotCanonical,
            format!("the path {what}; send the canonical form"),
        ))
    };
    if !path.starts_with('/') {
        return refuse("does not start with `/`");
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return refuse("contains a backslash"),
            0..=0x20 | 0x7f => return refuse("contains a control character or space"),
            b'%' => {
                let code = bytes.get(i + 1..i + 3).map(|h| h.to_ascii_lowercase());
                match code.as_deref() {
                    Some(b"2f") => return refuse("contains an encoded `/`"),
                    Some(b"5c") => return refuse("contains an encoded `\\`"),
                    Some(b"2e") => return refuse("contains an encoded `.`"),
                    Some(b"00") => return refuse("contains an encoded NUL"),
                    Some(&[high, low]) => match hex(high).zip(hex(low)) {
                        None => return refuse("contains a `%` that starts no escape"),
                        Some((h, l)) if unreserved(h << 4 | l) => {
                            return refuse(
                                "contains a percent-encoded letter, digit, `-`, `_` or `~`",
                            )
                        }
                        Some(_) => {}
                    },
                    _ => return refuse("contains a `%` that starts no escape"),
                }
            }
            _ => {}
        }
    }
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => return refuse("contains a `.` or `..` segment"),
            "" if !last => return refuse("contains an empty segment (`//`)"),
            _ => {}
        }
    }
    Ok(())
}

/// A hex digit's value.
fn hex(digit: u8) -> Option<u32> {
    char::from(digit).to_digit(16)
}

/// RFC 3986's unreserved characters (section 2.3), `.` aside (refused on its own above).
fn unreserved(byte: u32) -> bool {
    u8::try_from(byte).is_ok_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~'))
}

#[cfg(test)]
mod tests;
