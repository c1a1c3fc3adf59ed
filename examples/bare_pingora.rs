//! The floor under the gateway's load numbers: pingora with rustls and nothing else — one TLS
//! 1.3 listener, every request forwarded to one plain-HTTP upstream, no routing, no headers
//! touched, no record. `benches/proxy-bench-gateway.sh` runs it in `PB_MODE=bare` so that the
//! harness measures, in the same run as nginx and the gateway, what pingora itself costs.
//!
//!   PB_CERT=cert.pem PB_KEY=key.pem PB_UPSTREAM=127.0.0.1:8080 PB_PORT=8443 \
//!     cargo run --release --example bare_pingora

// A benchmark helper whose set-up fails has nothing to do: it stops loudly.
#![allow(clippy::expect_used)]

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

/// The gateway's allocator, so that the difference between the two is the gateway's work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    // The gateway's own provider (TLS 1.3 only), as in the gateway: the same handshake.
    phr_gateway::tls::provider::install(false).expect("provider");
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Bare {
            upstream: env("PB_UPSTREAM"),
        },
    );
    let mut tls =
        pingora::listeners::tls::TlsSettings::intermediate(&env("PB_CERT"), &env("PB_KEY"))
            .expect("certificate and key");
    tls.enable_h2();
    proxy.add_tls_with_settings(&format!("127.0.0.1:{}", env("PB_PORT")), None, tls);
    server.add_service(proxy);
    server.run_forever();
}
