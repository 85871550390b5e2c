//! Ports for servers that cannot be handed a bound socket nor bind port 0
//! themselves, and telling when such a server listens.
//!
//! Everything that can take port 0 does (the in-process server binds its
//! own listeners, the binary takes `--port 0 --servers 1`); a test that
//! needs a port to be taken binds it and keeps the listener. What is left
//! goes through [`retry_in_use`].

use std::net::{Ipv4Addr, TcpListener, UdpSocket};

/// Attempts [`retry_in_use`] makes before giving up.
const ATTEMPTS: usize = 10;

/// Starts a server with `start(first)` on `count` consecutive ports from
/// `first`, picking `first` afresh and starting again while the attempt
/// fails with "address in use".
///
/// For servers that cannot bind port 0: stock `iperf3 -s`, and our binary
/// when a test must know its port before it starts (a log file named after
/// it) or needs several consecutive ports. The ports are seen free for TCP
/// and UDP on loopback when picked, but another process may take one before
/// the server binds it: that attempt fails with "in use" in its error, and
/// the next one uses other ports. `start` must leave nothing behind that a
/// later attempt would trip over (use the port in file names).
pub fn retry_in_use<T>(
    count: u16,
    mut start: impl FnMut(u16) -> Result<T, String>,
) -> Result<T, String> {
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let first = candidate(count)?;
        match start(first) {
            Ok(t) => return Ok(t),
            Err(e) if e.contains("in use") => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(format!(
        "ports stayed in use over {ATTEMPTS} attempts: {last}"
    ))
}

/// `count` consecutive ports free for TCP and UDP on loopback just now.
fn candidate(count: u16) -> Result<u16, String> {
    for _ in 0..100 {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?
            .port();
        if u32::from(first) + u32::from(count) > 65536 {
            continue;
        }
        let free = (first..first + count).all(|p| {
            UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok()
                && (p == first || TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok())
        });
        if free {
            return Ok(first);
        }
    }
    Err(format!("no {count} consecutive free ports on loopback"))
}

/// Whether a TCP listener on `127.0.0.1:port` is refused as "address in
/// use" just now.
pub fn in_use(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}

/// Whether process `pid` has a TCP socket listening on `port` (read from
/// `/proc`, so that looking opens no connection a server would take for a
/// client; and by socket inode, so that another process on the port does
/// not count).
pub fn listening(pid: u32, port: u16) -> bool {
    let local = format!(":{port:04X}");
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let ours = f.len() > 9 && f[1].ends_with(&local) && f[3] == "0A";
                    ours.then(|| format!("socket:[{}]", f[9]))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}
