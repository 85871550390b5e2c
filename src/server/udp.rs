//! UDP data streams: the per-stream "connect" handshake on the test's port,
//! the socket buffers, and each stream's thread body (the loops themselves,
//! batched, are in [`super::udp_batch`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;

use super::stream_parts::{Counters, Pacing};
use super::udp_batch::{self, RecvSpec, SendSpec};
use crate::protocol::params::DataPath;
use crate::protocol::udp::REPLY;

/// Receive buffer asked for on receiving streams when the client set no
/// window: large, so bursts at high rates are not dropped by the kernel
/// (capped by `net.core.rmem_max`).
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// Binds an unconnected UDP socket to the test's port (`SO_REUSEADDR`, so
/// the next stream's listener can share the port with connected sockets).
pub fn bind_listener(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Length of the hello datagram every stock client sends.
const HELLO_LEN: usize = 4;

/// Accepts `count` UDP streams in order: each hello datagram connects the
/// current listener to its sender, a fresh listener is bound for the next
/// stream *before* the reply goes out (the client sends the next hello as
/// soon as it sees the reply), and the connected socket is handed over.
///
/// Stock takes any datagram as a hello. Here a hello must be 4 bytes long
/// (what every stock client sends) and come from `client`, the address of
/// the test's control connection: stray or garbage datagrams on the port
/// cannot take a stream's place.
pub async fn accept_streams(
    first: UdpSocket,
    addr: SocketAddr,
    client: std::net::IpAddr,
    count: u32,
    tx: mpsc::Sender<io::Result<(UdpSocket, SocketAddr)>>,
) {
    let mut next = Some(first);
    for i in 0..count {
        let result = async {
            let listener = tokio::net::UdpSocket::from_std(next.take().expect("listener"))?;
            let mut hello = [0u8; 64];
            // The content is not checked (stock never does), only its
            // length and its sender.
            let peer = loop {
                let (n, peer) = listener.recv_from(&mut hello).await?;
                if n == HELLO_LEN && peer.ip().to_canonical() == client.to_canonical() {
                    break peer;
                }
            };
            let sock = listener.into_std()?;
            sock.connect(peer)?;
            // Datagrams that reached the listener before the connect (from
            // anyone) are still queued; dropped here, so the stream counts
            // only what its client sends after the reply. The socket is
            // still non-blocking: this ends when the queue is empty.
            let mut sink = [0u8; 64];
            while sock.recv(&mut sink).is_ok() {}
            if i + 1 < count {
                next = Some(bind_listener(addr)?);
            }
            sock.set_nonblocking(false)?;
            sock.send(&REPLY)?;
            Ok((sock, peer))
        }
        .await;
        let failed = result.is_err();
        if tx.send(result).await.is_err() || failed {
            return;
        }
    }
}

/// Sets the stream socket's buffers: the client's window if it asked for
/// one, else a large receive buffer (and at least `len + 1024`, as stock).
/// Returns the sizes the kernel granted.
pub fn set_buffers(
    sock: &UdpSocket,
    window: u32,
    len: u32,
    receiving: bool,
) -> io::Result<(u32, u32)> {
    let s = socket2::SockRef::from(sock);
    if window > 0 {
        s.set_send_buffer_size(window as usize)?;
        s.set_recv_buffer_size(window as usize)?;
    } else {
        let min = len as usize + 1024;
        if s.send_buffer_size()? < min {
            s.set_send_buffer_size(min)?;
        }
        let want = if receiving {
            RECEIVE_BUFFER.max(min)
        } else {
            min
        };
        if s.recv_buffer_size()? < want {
            s.set_recv_buffer_size(want)?;
        }
    }
    Ok(super::listen::buffer_sizes(sock))
}

/// Builds a UDP stream's thread body for its role.
pub fn body(
    sock: UdpSocket,
    sender: bool,
    p: &crate::protocol::params::TestParams,
) -> super::streams::UdpBody {
    let len = p.len as usize;
    let c64 = p.udp_counters_64bit;
    if sender {
        let (repeating_payload, pacing) = (p.repeating_payload, Pacing::of(p));
        Box::new(
            move |c: Arc<Counters>, stop: Arc<AtomicBool>, t0, path: DataPath| {
                let spec = SendSpec {
                    len,
                    counters_64bit: c64,
                    repeating_payload,
                    pacing,
                    gso: path.gso,
                };
                udp_batch::send(sock, spec, t0, &c, &stop);
            },
        )
    } else {
        Box::new(
            move |c: Arc<Counters>, stop: Arc<AtomicBool>, _t0, path: DataPath| {
                let spec = RecvSpec {
                    len,
                    counters_64bit: c64,
                    gro: path.gro,
                    discard: path.discard,
                };
                udp_batch::receive(sock, spec, &c, &stop);
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // Multi-threaded: the test's client blocks while the handshake task runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handshake_connects_each_stream_in_order() {
        let first = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        tokio::spawn(accept_streams(first, addr, addr.ip(), 2, tx));
        // Neither garbage nor a datagram of another length is a hello.
        let stray = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        stray.send_to(b"garbage!", addr).unwrap();
        stray.send_to(b"", addr).unwrap();
        for round in 0..2 {
            let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            client.connect(addr).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            client.send(b"9876").unwrap();
            if round == 0 {
                // Garbage that arrives after the hello, before the reply:
                // it must not end up in the stream.
                stray.send_to(&[0xee; 40], addr).unwrap();
            }
            let mut reply = [0u8; 8];
            let n = client.recv(&mut reply).unwrap();
            assert_eq!(&reply[..n], b"6789");
            let (sock, peer) = rx.recv().await.unwrap().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            assert_eq!(sock.peer_addr().unwrap(), client.local_addr().unwrap());
            // Data from this client lands on its own connected socket, and
            // nothing else is queued there.
            client.send(b"data").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(sock.recv(&mut buf).unwrap(), 4);
            assert_eq!(&buf[..4], b"data");
        }
    }
}
