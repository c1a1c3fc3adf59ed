//! Connection limits and deadlines (R-NET-3): at most N open connections per client address,
//! and slow clients cut.
//!
//! pingora's own read timeout applies to each read, so a client that sends one header byte
//! every few seconds keeps a connection (and its memory) for as long as it likes
//! (slowloris). Here every connection is tracked from accept: until its first request head
//! has arrived it must finish within `header_timeout`; between requests, the next head must
//! finish within `idle_timeout`. A sweeper shuts down the socket of a connection past its
//! deadline; pingora's read then ends and the connection closes normally. Body reads get the
//! per-read `body_timeout` pingora enforces itself.
//!
//! The table learns of a connection before its TLS handshake (a pre-TLS hook on the public
//! listener) and forgets it when pingora drops the socket (a guard in the stream's tracer slot,
//! whose drop runs before the descriptor is closed). The sweeper holds the table's lock while
//! it shuts a socket down, so it never touches a descriptor number that was closed and reused.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::net::limit_key;

use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::GetSocketDigest;
use pingora::upstreams::peer::{Tracer, Tracing};
use pingora::{Error, ErrorType};

use crate::net::NetworkList;
use crate::policy::PolicyStore;

/// The connection limits of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionPlan {
    /// Open connections allowed per client address; 0: no limit. Trusted proxies are exempt.
    pub per_client: u32,
    /// Time from accept to a complete first request head (TLS handshake included).
    pub header_timeout: Duration,
    /// Time from the end of a response to the next complete request head.
    pub idle_timeout: Duration,
    /// Longest silence while a request body is read.
    pub body_timeout: Duration,
}

impl Default for ConnectionPlan {
    fn default() -> Self {
        ConnectionPlan {
            per_client: 0,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a connection was closed by the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutReason {
    /// Over the per-address connection limit (refused at accept).
    Limit,
    /// No complete request head within `header_timeout`.
    HeaderTimeout,
    /// Idle between requests past `idle_timeout`.
    IdleTimeout,
}

impl CutReason {
    /// The metrics label.
    pub const fn name(self) -> &'static str {
        match self {
            CutReason::Limit => "limit",
            CutReason::HeaderTimeout => "header_timeout",
            CutReason::IdleTimeout => "idle_timeout",
        }
    }
}

struct Connection {
    fd: RawFd,
    /// Requests in progress (several at once on HTTP/2).
    busy: u32,
    /// Accept time, or the end of the last response.
    waiting_since: Instant,
    /// Whether a request has completed on it (then the idle deadline applies).
    served: bool,
    /// Already shut down by the sweeper.
    cut: bool,
}

#[derive(Default)]
struct Table {
    connections: HashMap<SocketAddr, Connection>,
    per_address: OpenPerAddress,
}

/// Open connections per client, counted by [`limit_key`] (an IPv6 client by its /64): the
/// public listener's table and the plain redirect listener each keep one.
#[derive(Debug, Default)]
pub struct OpenPerAddress(HashMap<IpAddr, u32>);

impl OpenPerAddress {
    /// Count one more connection from `client`, unless it has `limit` open already (0: no
    /// limit); whether it was counted.
    pub fn enter(&mut self, client: IpAddr, limit: u32) -> bool {
        let count = self.0.entry(limit_key(client)).or_insert(0);
        if limit > 0 && *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    /// One connection from `client` is gone.
    pub fn leave(&mut self, client: IpAddr) {
        let key = limit_key(client);
        if let Some(count) = self.0.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.0.remove(&key);
            }
        }
    }
}

/// Open connections of the public listener.
#[derive(Default)]
pub struct ConnectionTable {
    table: Mutex<Table>,
}

impl std::fmt::Debug for ConnectionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionTable")
            .field("open", &self.open())
            .finish()
    }
}

impl ConnectionTable {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every update leaves both maps consistent before it could panic.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().connections.len()
    }

    /// Admit a new connection, or refuse it when its address has `per_client` open already.
    pub fn admit(
        &self,
        peer: SocketAddr,
        fd: RawFd,
        per_client: u32,
        exempt: bool,
    ) -> Result<(), CutReason> {
        let mut table = self.lock();
        if !table
            .per_address
            .enter(peer.ip(), if exempt { 0 } else { per_client })
        {
            return Err(CutReason::Limit);
        }
        table.connections.insert(
            peer,
            Connection {
                fd,
                busy: 0,
                waiting_since: Instant::now(),
                served: false,
                cut: false,
            },
        );
        Ok(())
    }

    /// The connection is gone.
    pub fn forget(&self, peer: SocketAddr) {
        let mut table = self.lock();
        if table.connections.remove(&peer).is_some() {
            table.per_address.leave(peer.ip());
        }
    }

    /// A request head arrived on the connection.
    pub fn request_started(&self, peer: SocketAddr) {
        if let Some(c) = self.lock().connections.get_mut(&peer) {
            c.busy += 1;
        }
    }

    /// A request on the connection is finished.
    pub fn request_finished(&self, peer: SocketAddr) {
        if let Some(c) = self.lock().connections.get_mut(&peer) {
            c.busy = c.busy.saturating_sub(1);
            if c.busy == 0 {
                c.waiting_since = Instant::now();
                c.served = true;
            }
        }
    }

    /// Shut down every connection past its deadline; returns how many, by reason.
    pub fn sweep(&self, plan: &ConnectionPlan, now: Instant) -> Vec<CutReason> {
        let mut cuts = Vec::new();
        let mut table = self.lock();
        for connection in table.connections.values_mut() {
            if connection.busy > 0 || connection.cut {
                continue;
            }
            let (deadline, reason) = if connection.served {
                (plan.idle_timeout, CutReason::IdleTimeout)
            } else {
                (plan.header_timeout, CutReason::HeaderTimeout)
            };
            if now.saturating_duration_since(connection.waiting_since) > deadline {
                // Under the table's lock: the descriptor is still this connection's (it is
                // closed only after `forget`, which needs the lock).
                let _ = nix::sys::socket::shutdown(connection.fd, nix::sys::socket::Shutdown::Both);
                connection.cut = true;
                cuts.push(reason);
            }
        }
        cuts
    }
}

/// The pre-TLS hook of the public listener: admits the connection and attaches the guard
/// that forgets it when pingora drops the socket.
pub struct ConnectionAdmission {
    /// The table.
    pub table: Arc<ConnectionTable>,
    /// The policy in force (limits and trusted proxies).
    pub store: Arc<PolicyStore>,
}

#[async_trait::async_trait]
impl PreTlsProcess for ConnectionAdmission {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let Some(peer) = peer else {
            return Ok(());
        };
        let snapshot = self.store.current();
        let exempt = is_trusted(&snapshot.network.trusted_proxies, peer.ip());
        match self.table.admit(
            peer,
            stream.as_raw_fd(),
            snapshot.limits.connections.per_client,
            exempt,
        ) {
            Ok(()) => {
                stream.tracer = Some(Tracer(Box::new(ConnectionGuard {
                    table: Arc::clone(&self.table),
                    peer,
                })));
                Ok(())
            }
            Err(reason) => {
                if let Some(m) = crate::metrics::metrics() {
                    m.connections_cut.with_label_values(&[reason.name()]).inc();
                }
                Error::e_explain(
                    ErrorType::ConnectionClosed,
                    "too many open connections from this address",
                )
            }
        }
    }
}

/// Whether `ip` is a trusted proxy's: exempt from the per-address connection limit.
pub fn is_trusted(proxies: &NetworkList, ip: IpAddr) -> bool {
    !proxies.is_empty() && proxies.contains(ip)
}

/// Lives in the stream's tracer slot; pingora calls `on_disconnected` when it drops the
/// stream, before the descriptor is closed.
#[derive(Debug, Clone)]
struct ConnectionGuard {
    table: Arc<ConnectionTable>,
    peer: SocketAddr,
}

impl Tracing for ConnectionGuard {
    fn on_connected(&self) {}

    fn on_disconnected(&self) {
        self.table.forget(self.peer);
    }

    fn boxed_clone(&self) -> Box<dyn Tracing> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], port))
    }

    #[test]
    fn per_address_limit_counts_open_connections() {
        let table = ConnectionTable::default();
        assert!(table.admit(peer(1, 1000), -1, 2, false).is_ok());
        assert!(table.admit(peer(1, 1001), -1, 2, false).is_ok());
        assert_eq!(
            table.admit(peer(1, 1002), -1, 2, false),
            Err(CutReason::Limit)
        );
        // Exempt peers (trusted proxies) and other addresses are not held back.
        assert!(table.admit(peer(1, 1003), -1, 2, true).is_ok());
        assert!(table.admit(peer(2, 1000), -1, 2, false).is_ok());
        table.forget(peer(1, 1000));
        table.forget(peer(1, 1003));
        assert!(table.admit(peer(1, 1004), -1, 2, false).is_ok());
        assert_eq!(table.open(), 3);
        // An IPv6 client is counted by its /64, and its connections are forgotten as counted.
        let v6 = |s: &str, port| SocketAddr::new(s.parse().unwrap_or([0u8; 16].into()), port);
        assert!(table.admit(v6("2001:db8::1", 1), -1, 2, false).is_ok());
        assert!(table.admit(v6("2001:db8::2", 1), -1, 2, false).is_ok());
        assert_eq!(
            table.admit(v6("2001:db8::3", 1), -1, 2, false),
            Err(CutReason::Limit)
        );
        assert!(table.admit(v6("2001:db8:0:1::1", 1), -1, 2, false).is_ok());
        table.forget(v6("2001:db8::1", 1));
        assert!(table.admit(v6("2001:db8::4", 1), -1, 2, false).is_ok());
    }

    #[test]
    fn deadlines_follow_the_connection_state() {
        let plan = ConnectionPlan {
            per_client: 0,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
        };
        let table = ConnectionTable::default();
        // fd -1: shutdown fails harmlessly; the table logic is what is tested here.
        assert!(table.admit(peer(1, 1), -1, 0, false).is_ok());
        assert!(table.admit(peer(1, 2), -1, 0, false).is_ok());
        table.request_started(peer(1, 2));
        let later = Instant::now() + Duration::from_secs(6);
        // The silent one is cut at the header deadline; the busy one is not.
        assert_eq!(table.sweep(&plan, later), vec![CutReason::HeaderTimeout]);
        assert!(table.sweep(&plan, later).is_empty(), "cut twice");
        table.request_finished(peer(1, 2));
        assert!(
            table.sweep(&plan, later).is_empty(),
            "idle deadline is longer"
        );
        let much_later = Instant::now() + Duration::from_secs(61);
        assert_eq!(table.sweep(&plan, much_later), vec![CutReason::IdleTimeout]);
    }
}
