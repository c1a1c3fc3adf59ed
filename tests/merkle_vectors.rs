//! The Merkle proof verifier against every RFC 6962 / RFC 9162 vector of the transparency-dev
//! test data (`../shared/corpora/merkle/rfc6962-proof-vectors.jsonl`), the ones that must be
//! accepted and the ones that must be refused (R-LOG-2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use phr_gateway::audit::merkle;
use serde_json::Value;

/// `PHR_SHARED` or `../shared` beside the repository.
fn shared_dir() -> PathBuf {
    std::env::var_os("PHR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn bytes(v: &Value) -> Vec<u8> {
    BASE64.decode(v.as_str().unwrap()).unwrap()
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn verifier_agrees_with_every_vector() {
    let path = shared_dir().join("corpora/merkle/rfc6962-proof-vectors.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipped: corpus not found at {}", path.display());
        return;
    };
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    let mut disagreements = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let proof: Vec<Vec<u8>> = v["proof"]
            .as_array()
            .map(|a| a.iter().map(bytes).collect())
            .unwrap_or_default();
        let proof: Vec<&[u8]> = proof.iter().map(Vec::as_slice).collect();
        let kind = v["kind"].as_str().unwrap();
        let accepted = match kind {
            "inclusion" => merkle::verify_inclusion(
                num(&v, "leafIdx"),
                num(&v, "treeSize"),
                &bytes(&v["leafHash"]),
                &proof,
                &bytes(&v["root"]),
            ),
            "consistency" => merkle::verify_consistency(
                num(&v, "size1"),
                num(&v, "size2"),
                &bytes(&v["root1"]),
                &bytes(&v["root2"]),
                &proof,
            ),
            "subtreeinclusion" => merkle::verify_subtree_inclusion(
                num(&v, "leafIdx"),
                num(&v, "start"),
                num(&v, "end"),
                &bytes(&v["leafHash"]),
                &proof,
                &bytes(&v["root"]),
            ),
            "subtreeconsistency" => merkle::verify_subtree_consistency(
                num(&v, "start"),
                num(&v, "end"),
                num(&v, "size"),
                &bytes(&v["root1"]),
                &bytes(&v["root2"]),
                &proof,
            ),
            other => panic!("unknown vector kind {other}"),
        };
        let expected = v["expect"].as_str() == Some("accept");
        if accepted != expected {
            disagreements.push(format!("{} (expected {})", v["id"], v["expect"]));
        }
        *checked
            .entry(format!("{kind}/{}", v["expect"].as_str().unwrap()))
            .or_default() += 1;
    }
    assert!(
        disagreements.is_empty(),
        "disagrees with {} vectors:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    // Every kind, both ways, was exercised.
    for kind in [
        "inclusion",
        "consistency",
        "subtreeinclusion",
        "subtreeconsistency",
    ] {
        for expect in ["accept", "reject"] {
            assert!(
                checked
                    .get(&format!("{kind}/{expect}"))
                    .is_some_and(|n| *n > 0),
                "no {kind}/{expect} vectors"
            );
        }
    }
    eprintln!("checked {checked:?}");
}

#[test]
fn the_rfc6962_test_tree_has_its_published_root() {
    // Trees built from the RFC 6962 test leaves: the roots the reference data names.
    let leaves: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        vec![
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    let hashes: Vec<merkle::Hash> = leaves.iter().map(|l| merkle::leaf_hash(l)).collect();
    // The well-known root of the 8-leaf RFC 6962 test tree.
    assert_eq!(
        hex::encode(merkle::root_of(&hashes)),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    assert_eq!(
        BASE64.encode(merkle::root_of(&hashes)),
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "the size-8 root the vectors use"
    );
}
