//! Opening a probe's connections: the data streams a test asks for (TCP:
//! the cookie first; UDP: the hello and the server's reply), with the
//! test's window, as the server's [`DataStream`]s.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

use crate::protocol::params::{Protocol, TestParams};
use crate::protocol::udp::REPLY;
use crate::protocol::wire::Cookie;
use crate::server::streams::DataStream;
use crate::server::udp;

/// The hello a 3.12+ client sends on a new UDP stream.
const HELLO: [u8; 4] = *b"9876";

/// The reply of a 3.7–3.11 server (987654321, little-endian).
const LEGACY_REPLY: [u8; 4] = [0xb1, 0x68, 0xde, 0x3a];

/// Datagrams of data a `-R` stream may see before the reply (stock skips
/// as many).
const EARLY_DATAGRAMS: usize = 2;

/// Whether the client sends on stream `index` (0-based) of a test.
pub fn client_sends(p: &TestParams, index: u32) -> bool {
    if p.bidirectional {
        index < p.parallel
    } else {
        !p.reverse
    }
}

/// Connects stream `index` of a test to `target` within `limit`.
pub async fn data_stream(
    target: SocketAddr,
    p: &TestParams,
    cookie: Cookie,
    index: u32,
    limit: Duration,
) -> io::Result<DataStream> {
    let sender = client_sends(p, index);
    let connect = async {
        match p.protocol {
            Protocol::Tcp => tcp_stream(target, p, cookie, sender).await,
            Protocol::Udp => udp_stream(target, p, sender).await,
        }
    };
    tokio::time::timeout(limit, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the data stream did not connect"))?
}

async fn tcp_stream(
    target: SocketAddr,
    p: &TestParams,
    cookie: Cookie,
    sender: bool,
) -> io::Result<DataStream> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if p.window > 0 {
        socket.set_send_buffer_size(p.window)?;
        socket.set_recv_buffer_size(p.window)?;
    }
    let mut stream = socket.connect(target).await?;
    stream.set_nodelay(p.nodelay)?;
    stream.write_all(&cookie.0).await?;
    DataStream::tcp(stream.into_std()?, sender)
}

async fn udp_stream(target: SocketAddr, p: &TestParams, sender: bool) -> io::Result<DataStream> {
    let local: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(target)?;
    udp::set_buffers(&sock, p.window, p.len, !sender)?;
    sock.set_nonblocking(true)?;
    let sock = tokio::net::UdpSocket::from_std(sock)?;
    sock.send(&HELLO).await?;
    let mut reply = [0u8; 64];
    let mut early = 0;
    loop {
        let n = sock.recv(&mut reply).await?;
        if n == 4 && (reply[..4] == REPLY || reply[..4] == LEGACY_REPLY) {
            break;
        }
        early += 1;
        if early > EARLY_DATAGRAMS {
            return Err(io::Error::other("no reply to the UDP stream's hello"));
        }
    }
    let sock = sock.into_std()?;
    sock.set_nonblocking(false)?;
    let (local, remote) = (sock.local_addr()?, sock.peer_addr()?);
    let socket_no = i64::from(sock.as_raw_fd());
    let body = udp::body(sock, sender, p);
    Ok(DataStream::udp(socket_no, sender, local, remote, body))
}
