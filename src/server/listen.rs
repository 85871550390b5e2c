//! Binding listeners with socket2: dual-stack where the address is `::`,
//! `SO_REUSEADDR`, and the per-test options (window, MSS) stock applies to the
//! listening socket before the data connections' handshakes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Options a test asks to have on the listener before its streams connect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenOpts {
    /// `SO_SNDBUF` and `SO_RCVBUF`, bytes (0 = system default).
    pub window: u32,
    /// `TCP_MAXSEG` (0 = system default).
    pub mss: u32,
}

/// Binds a TCP listener on `addr` (non-blocking, ready for tokio). An IPv6
/// unspecified address also accepts IPv4 (dual-stack).
pub fn tcp_listener(addr: SocketAddr, opts: ListenOpts) -> io::Result<std::net::TcpListener> {
    bind_prepared(prepared(addr, opts)?, addr)
}

/// A TCP socket for a listener on `addr` with `opts` applied, not yet
/// bound: every option a client asked for is checked here, so a bad one
/// (an MSS the kernel refuses) fails before an old listener is let go.
pub fn prepared(addr: SocketAddr, opts: ListenOpts) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    if opts.window > 0 {
        socket.set_send_buffer_size(opts.window as usize)?;
        socket.set_recv_buffer_size(opts.window as usize)?;
    }
    if opts.mss > 0 {
        socket.set_tcp_mss(opts.mss)?;
    }
    Ok(socket)
}

/// Binds and listens on a socket from [`prepared`].
pub fn bind_prepared(socket: Socket, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The default bind address: `::` where IPv6 works, else `0.0.0.0`.
pub fn default_bind() -> IpAddr {
    match Socket::new(Domain::IPV6, Type::STREAM, None) {
        Ok(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Err(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// `SO_SNDBUF` and `SO_RCVBUF` of a socket as the kernel reports them.
pub fn buffer_sizes(sock: &impl std::os::fd::AsFd) -> (u32, u32) {
    let s = socket2::SockRef::from(sock);
    let snd = s.send_buffer_size().unwrap_or(0);
    let rcv = s.recv_buffer_size().unwrap_or(0);
    (
        u32::try_from(snd).unwrap_or(u32::MAX),
        u32::try_from(rcv).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_accepts_ipv4() {
        let l = tcp_listener("[::]:0".parse().unwrap(), ListenOpts::default()).unwrap();
        let port = l.local_addr().unwrap().port();
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        l.set_nonblocking(false).unwrap();
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.ip().to_canonical(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn a_bad_mss_fails_before_binding() {
        let opts = ListenOpts { window: 0, mss: 1 };
        assert!(prepared("127.0.0.1:0".parse().unwrap(), opts).is_err());
    }

    #[test]
    fn window_is_applied() {
        let opts = ListenOpts {
            window: 262_144,
            mss: 0,
        };
        let l = tcp_listener("127.0.0.1:0".parse().unwrap(), opts).unwrap();
        let (snd, rcv) = buffer_sizes(&l);
        assert!(snd >= 262_144 && rcv >= 262_144, "{snd} {rcv}");
    }
}
