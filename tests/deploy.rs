#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! The shipped deployment files: the alert rules pass `promtool check rules` and their unit
//! tests (`promtool test rules`), the Grafana dashboard is valid JSON with a panel per figure.
//! promtool comes from Debian's `prometheus` package (scripts/setup.sh installs it as root; CI
//! always has it); without it the promtool checks say "skipped".

use std::path::Path;
use std::process::Command;

fn deploy(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
    {
        Ok(out) => Some(out),
        Err(_) => {
            eprintln!("skipped: promtool not found (install Debian's `prometheus` package)");
            None
        }
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests_r_ops_1() {
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts.test.yml"][..],
    ] {
        let Some(out) = promtool(args) else {
            return;
        };
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_alert_the_issue_names_is_shipped() {
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    for alert in [
        "PhrAuditWriteFailures",
        "PhrAuditLag",
        "PhrCertificateExpiresSoon",
        "PhrJwksStale",
        "PhrIdentityFailureSpike",
        "PhrInspectionBlockSpike",
        "PhrHigh5xxRatio",
        "PhrEmergencyStopActive",
        "PhrPolicyReloadFailed",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}\n")),
            "{alert} missing"
        );
        let tests = std::fs::read_to_string(deploy("prometheus/alerts.test.yml")).unwrap();
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no unit test"
        );
    }
}

#[test]
fn grafana_dashboard_is_valid_json_with_panels() {
    let text = std::fs::read_to_string(deploy("grafana/phr-gateway.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 20);
    for panel in panels {
        assert!(panel["targets"][0]["expr"]
            .as_str()
            .is_some_and(|e| e.contains("phr_")));
    }
}
