use super::*;
use crate::pki::DevCa;

fn issue(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ca = DevCa::new("test").unwrap_or_else(|e| panic!("{e}"));
    ca.issue_server(&["localhost"])
        .and_then(|i| i.write(dir, name))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn loads_a_matching_pair() {
    let dir = tempdir();
    let (cert, key) = issue(dir.path(), "a");
    let loaded = load_certified_key(&cert, &key);
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}

#[test]
fn refuses_a_key_of_another_certificate() {
    let dir = tempdir();
    let (cert_a, _) = issue(dir.path(), "a");
    let (_, key_b) = issue(dir.path(), "b");
    assert!(matches!(
        load_certified_key(&cert_a, &key_b),
        Err(CertificateError::Mismatch { .. })
    ));
}

#[test]
fn refuses_garbage_and_missing_files() {
    let dir = tempdir();
    let (cert, key) = issue(dir.path(), "a");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        load_certified_key(&junk, &key),
        Err(CertificateError::Chain { .. })
    ));
    assert!(matches!(
        load_certified_key(&cert, &junk),
        Err(CertificateError::Key { .. })
    ));
    let missing = dir.path().join("missing.pem");
    assert!(matches!(
        load_certified_key(&missing, &key),
        Err(CertificateError::Read { .. })
    ));
    let bad_der = dir.path().join("bad-der.pem");
    std::fs::write(
        &bad_der,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        load_certified_key(&bad_der, &key),
        Err(CertificateError::Chain { .. })
    ));
}

#[test]
fn reload_keeps_the_old_certificate_when_the_new_one_is_bad_r_tls_2() {
    let dir = tempdir();
    let (cert, key) = issue(dir.path(), "a");
    let first = Arc::new(load_certified_key(&cert, &key).unwrap_or_else(|e| panic!("{e}")));
    let resolver = ReloadingCertResolver::new(Arc::clone(&first), &cert, &key);
    assert_eq!(resolver.reload(false).ok(), Some(ReloadOutcome::Unchanged));

    std::fs::write(&cert, "broken").unwrap_or_else(|e| panic!("{e}"));
    assert!(resolver.reload(false).is_err());
    assert!(
        Arc::ptr_eq(&resolver.current(), &first),
        "bad file replaced the certificate"
    );

    let (new_cert, new_key) = issue(dir.path(), "b");
    std::fs::copy(&new_key, &key).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(&new_cert, &cert).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolver.reload(true).ok(), Some(ReloadOutcome::Replaced));
    assert_ne!(resolver.current().cert[0], first.cert[0]);
}
