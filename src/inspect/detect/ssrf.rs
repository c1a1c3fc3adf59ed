//! Server-side request forgery (`ssrf-100`): URL-valued fields that point at loopback,
//! link-local, private or cloud-metadata addresses, however the address is written.

use super::*;

/// A URL value whose host is loopback, private, link-local, unspecified or a cloud metadata
/// name (R-WAF-1, SSRF).
pub(super) fn ssrf(folded: &str) -> Option<Hit> {
    if schemeless_internal(folded) {
        return Some(Hit {
            rule: "ssrf-100",
            class: Class::Ssrf,
        });
    }
    // Every `scheme:` or `scheme://` in the value: URLs hide inside other text.
    let bytes = folded.as_bytes();
    let mut from = 0;
    while let Some(at) = folded[from..].find(':').map(|i| i + from) {
        from = at + 1;
        // The scheme starts after the last character that cannot be in one (which may be
        // more than one byte long).
        let scheme_start = folded[..at]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || "+.-".contains(c)))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = &folded[scheme_start..at];
        if scheme.is_empty() || scheme.len() > 16 || !bytes[scheme_start].is_ascii_alphabetic() {
            continue;
        }
        // `scheme://…` is a URL whatever the scheme; `http:host` only for schemes that fetch.
        const FETCHING: &[&str] = &[
            "http", "https", "ftp", "gopher", "dict", "file", "ldap", "ldaps", "tftp", "sftp",
            "ssh", "telnet", "smb", "rsync", "ws", "wss", "jar", "netdoc", "xri", "acap",
        ];
        let after = &folded[at + 1..];
        if !after.starts_with("//") && !FETCHING.contains(&scheme) {
            continue;
        }
        let rest = after.trim_start_matches('/');
        if internal_host(rest) {
            return Some(Hit {
                rule: "ssrf-100",
                class: Class::Ssrf,
            });
        }
    }
    None
}

/// Whether the authority at the start of `rest` names an internal host.
pub(super) fn internal_host(rest: &str) -> bool {
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    // `http://a.com &@b.com# @127.0.0.1/`: the last `@` decides for most URL parsers.
    let host_port = authority.rsplit('@').next().unwrap_or_default().trim();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split([':', '#', ' ']).next().unwrap_or_default()
    };
    // A fully qualified name's root dot (`localhost.`, `metadata.google.internal.`,
    // `127.1.`): a resolver reads it as the name without it.
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return false;
    }
    // URL parsers map the ideographic full stop to `.` in host names (IDNA).
    let dotted;
    let host = if host.contains('。') {
        dotted = host.replace('。', ".");
        dotted.as_str()
    } else {
        host
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => is_internal(ip),
        Err(_) => {
            internal_name(host)
                || embedded_address(host).is_some_and(|ip| is_internal(ip.into()))
                // 0x7f.1, 2130706433, 017700000001: numeric forms a resolver accepts.
                || host
                    .split('.')
                    .all(|p| !p.is_empty() && (p.starts_with("0x") || p.bytes().all(|b| b.is_ascii_digit())))
                    && !host.contains("..")
                    && host.bytes().any(|b| b != b'.')
                    && numeric_host_is_internal(host)
        }
    }
}

/// A host name that names the machine itself, its containers' host, a cluster's services or a
/// cloud's metadata service.
pub(super) fn internal_name(host: &str) -> bool {
    const NAMES: &[&str] = &[
        "localhost",
        "localhost4",
        "localhost6",
        "localhost.localdomain",
        "localhost4.localdomain4",
        "localhost6.localdomain6",
        "ip6-localhost",
        "ipv6-localhost",
        "ip6-loopback",
        "localtest.me",
        "lvh.me",
        "metadata",
        "metadata.google.internal",
        "metadata.packet.net",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "kubernetes",
        "kubernetes.default",
    ];
    NAMES.contains(&host)
        || host.ends_with(".localhost")
        || host.ends_with(".internal")
        || host.ends_with(".localtest.me")
        // A Kubernetes service by its in-cluster name (`kubernetes.default.svc`,
        // `db.prod.svc`): `svc` is no public top-level domain.
        || host.ends_with(".svc")
        // Consul's service names (`vault.service.consul`), multicast DNS (`printer.local`;
        // a cluster's `*.svc.cluster.local` too) and the home networks' special-use domain (`router.home.arpa`, RFC 8375): no
        // public name ends so.
        || host.ends_with(".consul")
        || host.ends_with(".local")
        || host.ends_with(".home.arpa")
}

/// The IPv4 address a name spells at its start (`127.0.0.1.example.test`), or anywhere in
/// the names of the public wildcard DNS services that answer with the address a name holds
/// (`app.10.0.0.5.nip.io`, `127-0-0-1.sslip.io`, `7f000001.nip.io`): a URL that reaches a
/// private address through a public name.
pub(super) fn embedded_address(host: &str) -> Option<std::net::Ipv4Addr> {
    const WILDCARD_DNS: &[&str] = &[".nip.io", ".sslip.io", ".xip.io", ".traefik.me"];
    // The first four labels of `name`, when `name` has as many.
    let four_labels = |name: &str| {
        let end = name
            .match_indices('.')
            .nth(3)
            .map_or(name.len(), |(at, _)| at);
        name[..end].parse::<std::net::Ipv4Addr>().ok()
    };
    if host.match_indices('.').nth(3).is_some() {
        if let Some(ip) = four_labels(host) {
            return Some(ip);
        }
    }
    let name = WILDCARD_DNS
        .iter()
        .find_map(|domain| host.strip_suffix(domain))?;
    let label_starts = std::iter::once(0).chain(name.match_indices('.').map(|(at, _)| at + 1));
    if let Some(ip) = label_starts.clone().find_map(|at| four_labels(&name[at..])) {
        return Some(ip);
    }
    // The last label, dashed (`magic-127-0-0-1`) or hexadecimal (`app-7f000001`).
    let last = &name[label_starts.last().unwrap_or(0)..];
    let dashed = &last[last.rmatch_indices('-').nth(3).map_or(0, |(at, _)| at + 1)..];
    if let Ok(ip) = dashed.replace('-', ".").parse() {
        return Some(ip);
    }
    let hex = last.rsplit('-').next()?;
    (hex.len() == 8)
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
        .map(std::net::Ipv4Addr::from)
}

/// A value that starts with an internal host name and a path or port, without a scheme
/// (`localhost/admin`, `host.docker.internal:2375/`): what a backend that prepends
/// `http://` fetches. Names only: a number before a slash is a value (`118/76`).
pub(super) fn schemeless_internal(folded: &str) -> bool {
    let Some(end) = folded.find(['/', ':']) else {
        return false;
    };
    let host = &folded[..end];
    internal_name(host) && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A host in the numeric forms `inet_aton` accepts (`2130706433`, `0x7f.1`, `0177.0.0.1`).
pub(super) fn numeric_host_is_internal(host: &str) -> bool {
    let parts: Vec<u64> = host
        .split('.')
        .filter_map(|p| {
            if let Some(hex) = p.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).ok()
            } else if p.len() > 1 && p.starts_with('0') {
                u64::from_str_radix(p, 8).ok()
            } else {
                p.parse().ok()
            }
        })
        .collect();
    let value = match parts.as_slice() {
        // A lone number past 32 bits wraps in some parsers (`7147006462` is 169.254.169.254).
        [a] => *a & 0xffff_ffff,
        [a, b] => (a << 24) | b,
        [a, b, c] => (a << 24) | (b << 16) | c,
        [a, b, c, d] => (a << 24) | (b << 16) | (c << 8) | d,
        _ => return false,
    };
    u32::try_from(value).is_ok_and(|v| is_internal(std::net::Ipv4Addr::from(v).into()))
}

pub(super) fn is_internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
                // Oracle Cloud's and Alibaba's metadata services.
                || v4.octets() == [192, 0, 0, 192]
                || v4.octets() == [100, 100, 100, 200]
        }
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(v4.into()))
        }
    }
}
