//! Identity (R-AUTH-1): who is asking.
//!
//! Token verification (JWT/JWKS, MFA, sessions) is not built yet. Until it is, the gateway
//! fails closed: a route that is not declared `anonymous = true` is refused with
//! `identity.missing`, because no identity can be verified. Nothing that needs identity is
//! ever forwarded unauthenticated.

use crate::decision::{Reason, Refusal};
use crate::route::Route;

/// The identity step for a matched route.
pub fn require(route: &Route) -> Result<(), Refusal> {
    if route.anonymous {
        return Ok(());
    }
    Err(Refusal::new(
        Reason::IdentityMissing,
        "this route requires a verified identity, and this gateway has no token issuer configured",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DataCategory;

    fn route(anonymous: bool) -> Route {
        Route {
            id: "r".into(),
            pattern: "/r".into(),
            methods: vec![http::Method::GET],
            upstream: 0,
            category: DataCategory::Checkup,
            anonymous,
        }
    }

    #[test]
    fn non_anonymous_route_fails_closed_r_auth_1() {
        assert_eq!(
            require(&route(false)).err().map(|r| r.reason),
            Some(Reason::IdentityMissing)
        );
        assert!(require(&route(true)).is_ok());
    }
}
