//! Mint N distinct ES256 access tokens (one per line) and their issuer's JWKS (the demo
//! issuer's `iss` and `aud`), for
//! `benches/identity-load.sh`'s uncached run: every request carries a token the gateway has
//! not verified before. Development only; the key is made here and never written.
//!
//!   cargo run --release --example mint_tokens -- N TOKENS_FILE JWKS_FILE [CLINIC_TOKEN_FILE]
//!
//! With CLINIC_TOKEN_FILE, also one token of the application `bench-clinic` (a registered
//! recipient in the access run), launched for `bench-0`.

// A benchmark helper whose set-up fails has nothing to do: it stops loudly.
#![allow(clippy::expect_used)]

use std::io::Write;

use phr_gateway::demo::issuer::DemoIssuer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (n, tokens, jwks, clinic) = match args.as_slice() {
        [_, n, tokens, jwks] => (n, tokens, jwks, None),
        [_, n, tokens, jwks, clinic] => (n, tokens, jwks, Some(clinic)),
        _ => {
            eprintln!("usage: mint_tokens N TOKENS_FILE JWKS_FILE [CLINIC_TOKEN_FILE]");
            std::process::exit(2);
        }
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
    if let Some(clinic) = clinic {
        let token = issuer
            .recipient_token("dr-bench", "bench-clinic", "bench-0", now)
            .expect("sign");
        std::fs::write(clinic, token).expect("write clinic token");
    }
}
