//! Which `Host` and `Origin` headers belong to this dashboard: pure checks,
//! no I/O (the machine's names are handed in).
//!
//! A web page on another site can make a visitor's browser send requests
//! to the dashboard. Two things keep it from reading or changing anything:
//!
//! - **Host**: under DNS rebinding an attacker's name points at the box, and
//!   the browser then treats the dashboard as the attacker's own origin. Its
//!   requests still carry the attacker's name in `Host`, so only names the
//!   box answers to are served: IP literals, `localhost`, the machine's host
//!   names (and their `.local` mDNS form), and names given with
//!   `--http-host`. A request without `Host` (HTTP/1.0, scripts) is served:
//!   browsers always send one.
//! - **Origin**: the websocket and the routes that change state refuse a
//!   browser request whose `Origin` is not the page's own (scheme `http` or
//!   `https`, authority equal to the accepted `Host`). Scripts send no
//!   `Origin` and are served.
//!
//! The ndt7 routes are meant for any page and stay outside both checks.

use std::net::IpAddr;
use std::sync::Arc;

/// The host names the dashboard answers to, besides IP literals and
/// `localhost`.
#[derive(Debug, Clone, Default)]
pub struct HostNames {
    names: Arc<[String]>,
}

impl HostNames {
    /// The machine's `hostname` (with and without its domain, and with
    /// `.local`) and the `extra` names (from `--http-host`), lower-cased.
    pub fn new(hostname: Option<&str>, extra: &[String]) -> HostNames {
        let mut names: Vec<String> = Vec::new();
        if let Some(host) = hostname.map(str::trim).filter(|h| !h.is_empty()) {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let short = host.split('.').next().unwrap_or(&host).to_string();
            names.push(format!("{short}.local"));
            names.push(short);
            names.push(host);
        }
        names.extend(
            extra
                .iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase()),
        );
        names.retain(|n| !n.is_empty());
        names.sort();
        names.dedup();
        HostNames {
            names: names.into(),
        }
    }

    /// Whether a `Host` header value (name or address, optional port) names
    /// this dashboard. `None` (no header) is accepted.
    pub fn accepts(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let Some(name) = host_name(host) else {
            return false;
        };
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost" || self.names.contains(&name)
    }
}

/// The name or address of a `Host` value without its port or brackets;
/// `None` when it is not a well-formed `host[:port]`.
fn host_name(host: &str) -> Option<&str> {
    let host = host.trim();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        (inside, after.strip_prefix(':'))
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let well_formed = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    well_formed.then_some(name)
}

/// Whether a browser's `Origin` is the page's own: `http://` or `https://`
/// followed by exactly the (accepted) `Host`. No `Origin` (not a browser,
/// or a same-origin GET of an old one) is accepted; `null` is not.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(a), Some(h)) => a.trim_end_matches('/').eq_ignore_ascii_case(h.trim()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HostNames {
        HostNames::new(Some("Pi4.lan"), &["speed.example.org".into()])
    }

    #[test]
    fn ip_literals_localhost_and_the_machine_names_are_accepted() {
        let n = names();
        for host in [
            "192.168.1.5",
            "192.168.1.5:8080",
            "[::1]:8080",
            "[fe80::1]",
            "localhost",
            "LOCALHOST:8080",
            "pi4",
            "pi4.lan:8080",
            "PI4.local:8080",
            "speed.example.org",
            "speed.example.org.:80",
        ] {
            assert!(n.accepts(Some(host)), "{host}");
        }
        assert!(n.accepts(None));
    }

    #[test]
    fn other_names_and_malformed_hosts_are_refused() {
        let n = names();
        for host in [
            "evil.example",
            "evil.example:8080",
            "pi4.evil.example",
            "localhost.evil.example",
            "192.168.1.5.nip.io",
            "",
            "pi4:",
            "pi4:80x",
            "[::1",
            "[evil]:80",
            "pi4 x",
            "pi4/x",
            "user@pi4",
        ] {
            assert!(!n.accepts(Some(host)), "{host}");
        }
        assert!(!HostNames::default().accepts(Some("pi4")));
    }

    #[test]
    fn origin_must_match_host() {
        assert!(same_origin(Some("http://pi:8080"), Some("pi:8080")));
        assert!(same_origin(Some("https://PI:8080/"), Some("pi:8080")));
        assert!(same_origin(Some("http://[::1]:8080"), Some("[::1]:8080")));
        assert!(same_origin(None, Some("pi:8080")));
        assert!(!same_origin(Some("http://evil.example"), Some("pi:8080")));
        assert!(!same_origin(Some("http://pi:8081"), Some("pi:8080")));
        assert!(!same_origin(Some("null"), Some("pi:8080")));
        assert!(!same_origin(Some("file://"), Some("pi:8080")));
        assert!(!same_origin(Some("http://pi:8080"), None));
    }
}
