use super::*;

fn route(id: &str, methods: &[Method], pattern: &str) -> Route {
    Route {
        id: id.into(),
        pattern: pattern.into(),
        methods: methods.to_vec(),
        upstream: 0,
        category: DataCategory::Checkup,
        anonymous: false,
        mfa: true,
        step_up: Default::default(),
        allow_from: Default::default(),
        access: Default::default(),
        inspect: Default::default(),
    }
}

fn table(routes: Vec<Route>) -> RouteTable {
    let mut b = RouteTableBuilder::default();
    for r in routes {
        b.add(r).unwrap_or_else(|e| panic!("{e}"));
    }
    b.build()
}

#[test]
fn finds_route_and_params() {
    let t = table(vec![
        route("patient", &[Method::GET], "/fhir/Patient/{id}"),
        route(
            "obs-search",
            &[Method::GET, Method::POST],
            "/fhir/Observation",
        ),
    ]);
    let Lookup::Found(m) = t.lookup(&Method::GET, "/fhir/Patient/p-1") else {
        panic!("no match");
    };
    assert_eq!(&*m.route.id, "patient");
    assert_eq!(m.params.get("id"), Some("p-1"));
    assert!(matches!(
        t.lookup(&Method::HEAD, "/fhir/Patient/p-1"),
        Lookup::Found(_)
    ));
    assert!(matches!(
        t.lookup(&Method::POST, "/fhir/Observation"),
        Lookup::Found(_)
    ));
}

#[test]
fn undeclared_path_is_not_found_r_az_1() {
    let t = table(vec![route("patient", &[Method::GET], "/fhir/Patient/{id}")]);
    assert!(matches!(t.lookup(&Method::GET, "/admin"), Lookup::NotFound));
    assert!(matches!(
        t.lookup(&Method::GET, "/fhir/Patient/1/extra"),
        Lookup::NotFound
    ));
    let refusal = t.route(&Method::GET, "/fhir").err().map(|r| r.reason);
    assert_eq!(refusal, Some(Reason::RouteNotFound));
}

#[test]
fn undeclared_method_is_405_with_allow() {
    let t = table(vec![route("patient", &[Method::GET], "/fhir/Patient/{id}")]);
    let refusal = t.route(&Method::DELETE, "/fhir/Patient/1").err();
    let refusal = refusal.unwrap_or_else(|| panic!("DELETE was allowed"));
    assert_eq!(refusal.reason, Reason::RouteMethodNotAllowed);
    assert_eq!(refusal.allow.as_deref(), Some("GET, HEAD"));
}

#[test]
fn same_method_and_path_twice_is_an_error() {
    let mut b = RouteTableBuilder::default();
    assert!(b.add(route("a", &[Method::GET], "/x/{id}")).is_ok());
    let err = b.add(route("b", &[Method::GET], "/x/{id}")).err();
    assert!(err.is_some_and(|e| e.contains("already declared by route `a`")));
}

#[test]
fn conflicting_parameter_names_are_an_error() {
    let mut b = RouteTableBuilder::default();
    assert!(b.add(route("a", &[Method::GET], "/x/{id}")).is_ok());
    assert!(b.add(route("b", &[Method::PUT], "/x/{other}")).is_err());
}

#[test]
fn duplicate_ids_are_an_error() {
    let mut b = RouteTableBuilder::default();
    assert!(b.add(route("a", &[Method::GET], "/x")).is_ok());
    assert!(b.add(route("a", &[Method::GET], "/y")).is_err());
}

#[test]
fn patterns_must_be_canonical() {
    let mut b = RouteTableBuilder::default();
    assert!(b.add(route("a", &[Method::GET], "x")).is_err());
    assert!(b.add(route("b", &[Method::GET], "/a/../b")).is_err());
    assert!(b.add(route("c", &[Method::GET], "/a?b=1")).is_err());
    assert!(b.add(route("d", &[Method::GET], "/a/{id}/{*rest}")).is_ok());
}

#[test]
fn non_canonical_paths_are_refused_before_matching() {
    let t = table(vec![route("any", &[Method::GET], "/{*rest}")]);
    for path in [
        "/public/../fhir/Patient/1",
        "/public/./x",
        "/public/..%2Ffhir",
        "/public/%2e%2e/fhir",
        "/public/%2E%2E/fhir",
        "/a//b",
        "/a\\b",
        "/a%5cb",
        "/a%00b",
        "/..",
        "no-slash",
        // The same path with a character a backend decodes back (RFC 3986 section 6.2.2.2).
        "/fhir/%4Fbservation",
        "/fhir/Patient/p%2D1",
        "/%66hir",
        "/a%5fb",
        "/a%7Eb",
        "/a%31",
        // A `%` that starts no escape; IIS's `%u` form.
        "/a%zz",
        "/a%u004F",
        "/a%4",
        "/a%",
    ] {
        let refusal = t.route(&Method::GET, path).err().map(|r| r.reason);
        assert_eq!(refusal, Some(Reason::RoutePathNotCanonical), "{path}");
    }
    for path in [
        "/x",
        "/a/b/",
        "/fhir/Patient/p-1.json",
        "/a%20b",
        "/%E6%97%A5",
        "/%e6%97%a5",
        "/a%25b",
        "/a%40b",
        "/a%3Ab",
    ] {
        assert!(t.route(&Method::GET, path).is_ok(), "{path}");
    }
}
