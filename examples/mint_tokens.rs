//! Mint N distinct ES256 access tokens (one per line) and their issuer's JWKS (the demo
//! issuer's `iss` and `aud`), for
//! `benches/identity-load.sh`'s uncached run: every request carries a token the gateway has
//! not verified before. Development only; the key is made here and never written.
//!
//!   cargo run --release --example mint_tokens -- N TOKENS_FILE JWKS_FILE

// A benchmark helper whose set-up fails has nothing to do: it stops loudly.
#![allow(clippy::expect_used)]

use std::io::Write;

use phr_gateway::demo::issuer::DemoIssuer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, n, tokens, jwks] = args.as_slice() else {
        eprintln!("usage: mint_tokens N TOKENS_FILE JWKS_FILE");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let issuer = DemoIssuer::generate().expect("key");
    std::fs::write(jwks, &issuer.jwks).expect("write JWKS");
    let mut out = std::io::BufWriter::new(std::fs::File::create(tokens).expect("tokens file"));
    let now = phr_gateway::identity::unix_now();
    for i in 0..n {
        // Distinct subjects, so that every token is a new cache key.
        let token = issuer.token(&format!("bench-{i}"), now).expect("sign");
        writeln!(out, "{token}").expect("write");
    }
    out.flush().expect("flush");
}
