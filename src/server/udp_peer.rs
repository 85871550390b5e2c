//! The drop counter of a UDP stream's other end when it is a socket on
//! this host (a client on loopback, or in this network namespace): how
//! many datagrams its socket dropped because its receive buffer was full.
//! Read from `/proc/net/udp` and `/proc/net/udp6`; `None` for a peer
//! elsewhere.

use std::net::{IpAddr, SocketAddr};

/// The drops of the socket bound to `ours`' peer address and connected to
/// `ours`: the other end of a connected UDP socket whose addresses are
/// `ours` (local) and `peer` (remote).
pub fn peer_drops(ours: SocketAddr, peer: SocketAddr) -> Option<u64> {
    let (local, remote) = (unmapped(peer), unmapped(ours));
    let file = if local.is_ipv4() {
        "/proc/net/udp"
    } else {
        "/proc/net/udp6"
    };
    drops_in(&std::fs::read_to_string(file).ok()?, local, remote)
}

/// An IPv4-mapped IPv6 address as the IPv4 address the kernel lists.
fn unmapped(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// An address as `/proc/net/udp*` writes it: the address's 32-bit words
/// in the machine's byte order, in hex, then the port.
fn proc_form(a: SocketAddr) -> String {
    let words: Vec<String> = match a.ip() {
        IpAddr::V4(v4) => vec![format!("{:08X}", u32::from_ne_bytes(v4.octets()))],
        IpAddr::V6(v6) => v6
            .octets()
            .chunks_exact(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
            .collect(),
    };
    format!("{}:{:04X}", words.concat(), a.port())
}

/// The `drops` column of the line in `table` for the socket at `local`
/// connected to `remote`.
fn drops_in(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let (local, remote) = (proc_form(local), proc_form(remote));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let matches =
            fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str());
        matches.then(|| fields.last()?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_local_peer_is_found_with_its_drops() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        b.set_nonblocking(true).unwrap();
        let (ours, peer) = (b.local_addr().unwrap(), a.local_addr().unwrap());
        assert_eq!(peer_drops(ours, peer), Some(0));
        // Fill the peer's receive buffer: what does not fit is dropped.
        for _ in 0..2000 {
            let _ = b.send(&[0u8; 1400]);
        }
        assert!(peer_drops(ours, peer).unwrap() > 0);
        // As a dual-stack socket names it.
        let mapped = |s: SocketAddr| match s.ip() {
            IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), s.port()),
            IpAddr::V6(_) => s,
        };
        assert!(peer_drops(mapped(ours), mapped(peer)).is_some());
        // Not a socket of this host.
        let elsewhere: SocketAddr = "192.0.2.1:5201".parse().unwrap();
        assert_eq!(peer_drops(ours, elsewhere), None);
    }

    #[test]
    fn the_table_is_read_by_address_and_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          12: 0100007F:1451 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 17\n";
        let lo = |port| SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), port);
        if cfg!(target_endian = "little") {
            assert_eq!(drops_in(table, lo(5201), lo(40000)), Some(17));
            assert_eq!(drops_in(table, lo(40000), lo(5201)), None);
        }
    }
}
