//! Data streams: one OS thread per stream moving bytes through one reused
//! buffer, bumping counters that the interval reporter reads without ever
//! stopping the stream (single writer, relaxed atomics, no lock per block).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::protocol::params::TestParams;
use crate::report::stats::{Sample, StreamKind, UdpSnapshot};
use crate::sys::PageBuf;

/// Counters one stream thread writes and the reporter reads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes moved.
    pub bytes: AtomicU64,
    /// Blocks moved (whole blocks of the test's length, TCP; datagrams, UDP).
    pub blocks: AtomicU64,
    /// UDP: datagrams sent, or highest sequence number seen.
    pub packets: AtomicU64,
    /// UDP receive: lost datagrams (net of late arrivals).
    pub lost: AtomicU64,
    /// UDP receive: out-of-order datagrams.
    pub out_of_order: AtomicU64,
    /// UDP receive: jitter in seconds, as `f64` bits.
    pub jitter_bits: AtomicU64,
    /// The stream ended with an I/O error before it was stopped.
    pub failed: AtomicBool,
    /// The OS error number of that failure (0 if none was given).
    pub os_error: AtomicI32,
    /// Set by the reporter when the omit period ends: the receiver restarts
    /// its jitter measurement.
    pub restart: AtomicBool,
    /// A sending TCP stream is inside a write (blocked there while the
    /// client does not read).
    pub writing: AtomicBool,
}

impl Counters {
    /// Records that the stream ended with `error`.
    pub fn fail(&self, error: Option<&std::io::Error>) {
        let errno = error.and_then(std::io::Error::raw_os_error).unwrap_or(0);
        self.os_error.store(errno, Relaxed);
        self.failed.store(true, Relaxed);
    }

    /// Adds to a counter that only this thread writes: a plain load and
    /// store, no locked read-modify-write on the hot path.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    }
}

/// A block of payload: random bytes, or `0123456789…` for `--repeating-payload`.
pub fn payload(len: usize, repeating: bool) -> Vec<u8> {
    let mut buf = vec![0; len];
    fill_payload(&mut buf, repeating);
    buf
}

/// Fills `buf` with payload, as [`payload`] makes it.
pub fn fill_payload(buf: &mut [u8], repeating: bool) {
    if repeating {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = b"0123456789"[i % 10];
        }
        return;
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    for b in buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
}

/// How far ahead of its schedule a paced stream may run before it sleeps.
pub const PACING_SLACK: Duration = Duration::from_millis(1);

/// Pacing of a sending stream: the average rate since the test started must
/// stay at or below `rate` bits/s; `burst` blocks go out per check.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Target bits per second; 0 = unlimited.
    pub rate: u64,
    /// Blocks back to back per check (at least 1).
    pub burst: u32,
}

impl Pacing {
    /// From the client's parameters.
    pub fn of(p: &TestParams) -> Pacing {
        Pacing {
            rate: p.bandwidth,
            burst: p.burst.max(1),
        }
    }

    /// How long to wait before sending more, having sent `sent` bytes
    /// `elapsed` after the start; `None` = send now. A stream may run up to
    /// [`PACING_SLACK`] ahead of its schedule before it sleeps, so it wakes
    /// about once per millisecond at most, as stock's 1 ms pacing timer did,
    /// instead of once per datagram.
    pub fn wait(&self, sent: u64, elapsed: Duration) -> Option<Duration> {
        if self.rate == 0 {
            return None;
        }
        let due = Duration::from_secs_f64(sent as f64 * 8.0 / self.rate as f64);
        (due > elapsed + PACING_SLACK).then(|| due - elapsed)
    }
}

/// The body of a UDP stream's thread: counters to fill, a stop flag to
/// obey, the test's start (for pacing).
pub type UdpBody = Box<dyn FnOnce(Arc<Counters>, Arc<AtomicBool>, Instant) + Send>;

/// A data stream of a test, before and while it runs.
pub struct DataStream {
    /// The number the log shows as `socket`.
    pub socket_no: i64,
    /// Whether the server sends on it, and whether it is UDP.
    pub kind: StreamKind,
    /// Local address.
    pub local: SocketAddr,
    /// The client's address.
    pub remote: SocketAddr,
    /// What the stream thread counts.
    pub counters: Arc<Counters>,
    io: Io,
    thread: Option<JoinHandle<()>>,
}

enum Io {
    /// A TCP stream: the thread gets `run` (taken at start), the reporter
    /// keeps `probe` (a duplicate descriptor) for TCP_INFO and shutdown.
    Tcp {
        run: Option<TcpStream>,
        probe: TcpStream,
    },
    /// A UDP stream: connected socket, the thread runs `body`.
    Udp {
        stop: Arc<AtomicBool>,
        body: Option<UdpBody>,
    },
}

impl DataStream {
    /// Wraps an accepted TCP data connection (blocking mode).
    pub fn tcp(stream: TcpStream, sender: bool) -> std::io::Result<DataStream> {
        use std::os::fd::AsRawFd;
        stream.set_nonblocking(false)?;
        let probe = stream.try_clone()?;
        Ok(DataStream {
            socket_no: i64::from(stream.as_raw_fd()),
            kind: StreamKind { sender, udp: false },
            local: stream.local_addr()?,
            remote: stream.peer_addr()?,
            counters: Arc::default(),
            io: Io::Tcp {
                run: Some(stream),
                probe,
            },
            thread: None,
        })
    }

    /// Wraps a UDP stream whose thread body is `body` (it must return soon
    /// after the flag it is given becomes true).
    pub fn udp(
        socket_no: i64,
        sender: bool,
        local: SocketAddr,
        remote: SocketAddr,
        body: UdpBody,
    ) -> DataStream {
        DataStream {
            socket_no,
            kind: StreamKind { sender, udp: true },
            local,
            remote,
            counters: Arc::default(),
            io: Io::Udp {
                stop: Arc::default(),
                body: Some(body),
            },
            thread: None,
        }
    }

    /// Starts the stream's thread. `t0` is the test start (for pacing).
    pub fn start(&mut self, p: &TestParams, t0: Instant) -> std::io::Result<()> {
        let counters = Arc::clone(&self.counters);
        let name = format!("stream-{}", self.socket_no);
        let handle = match &mut self.io {
            Io::Tcp { run, .. } => {
                let Some(sock) = run.take() else {
                    return Ok(());
                };
                // One block, on a page boundary as stock's mapped buffers
                // are: see [`PageBuf`].
                let mut buf = PageBuf::zeroed(p.len as usize)?;
                if self.kind.sender {
                    fill_payload(&mut buf, p.repeating_payload);
                    let pacing = Pacing::of(p);
                    std::thread::Builder::new()
                        .name(name)
                        .spawn(move || tcp_send(sock, &buf, pacing, t0, &counters))?
                } else {
                    std::thread::Builder::new()
                        .name(name)
                        .spawn(move || tcp_receive(sock, &mut buf, &counters))?
                }
            }
            Io::Udp { stop, body } => {
                let Some(body) = body.take() else {
                    return Ok(());
                };
                let stop = Arc::clone(stop);
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || body(counters, stop, t0))?
            }
        };
        self.thread = Some(handle);
        Ok(())
    }

    /// A snapshot of the counters (and TCP_INFO of a sending TCP stream).
    pub fn sample(&self) -> Sample {
        let c = &self.counters;
        let tcp = match &self.io {
            Io::Tcp { probe, .. } if self.kind.sender => crate::sys::tcp_info(probe),
            _ => None,
        };
        let udp = self.kind.udp.then(|| UdpSnapshot {
            packets: c.packets.load(Relaxed),
            lost: c.lost.load(Relaxed),
            out_of_order: c.out_of_order.load(Relaxed),
            jitter: f64::from_bits(c.jitter_bits.load(Relaxed)),
        });
        Sample {
            bytes: c.bytes.load(Relaxed),
            tcp,
            udp,
        }
    }

    /// Bytes moved so far (without the rest of a [`DataStream::sample`]).
    pub fn sample_bytes(&self) -> u64 {
        self.counters.bytes.load(Relaxed)
    }

    /// The OS error number the stream's thread ended with, if it failed
    /// (0 when the failure had none).
    pub fn failure(&self) -> Option<i32> {
        let c = &self.counters;
        c.failed.load(Relaxed).then(|| c.os_error.load(Relaxed))
    }

    /// Whether the stream's thread sits in a write: a sending TCP stream
    /// whose client stopped reading. Receiving and UDP streams never are.
    pub fn blocked_in_write(&self) -> bool {
        self.counters.writing.load(Relaxed)
    }

    /// The congestion algorithm in effect on a TCP stream.
    pub fn congestion(&self) -> Option<String> {
        match &self.io {
            Io::Tcp { probe, .. } => {
                let sock = socket2::SockRef::from(probe);
                sock.tcp_congestion().ok().map(|b| {
                    String::from_utf8_lossy(&b)
                        .trim_end_matches('\0')
                        .to_string()
                })
            }
            Io::Udp { .. } => None,
        }
    }

    /// Stops the stream: shuts the socket down (which wakes a blocked read
    /// or write) and lets the thread finish on its own.
    pub fn stop(&mut self) {
        match &self.io {
            Io::Tcp { probe, .. } => {
                let _ = probe.shutdown(Shutdown::Both);
            }
            Io::Udp { stop, .. } => stop.store(true, Relaxed),
        }
        // The thread exits within one blocked call; nothing waits for it.
        self.thread.take();
    }
}

impl Drop for DataStream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Receives in whole blocks of `buf.len()` bytes, as stock does: a blocking read
/// asks for the rest of the current block, so the socket is drained in
/// block-sized steps rather than in whatever happens to be queued. Measured
/// on loopback against a single stock client: reading whatever is queued
/// (up to a block) made the client see 3–5× more reordering (its packets
/// sent partly from the receiver's CPU by our ACKs), spurious retransmits
/// and 10–20 % less throughput than stock 3.21; reading whole blocks brings
/// both back to stock's (see docs/performance.md). A shutdown by
/// [`DataStream::stop`] makes the blocked read return 0.
fn tcp_receive(mut sock: TcpStream, buf: &mut [u8], c: &Counters) {
    let mut filled = 0;
    loop {
        match sock.read(&mut buf[filled..]) {
            Ok(0) => return,
            Ok(n) => {
                Counters::add(&c.bytes, n as u64);
                filled += n;
                if filled == buf.len() {
                    filled = 0;
                    Counters::add(&c.blocks, 1);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                c.fail(Some(&e));
                return;
            }
        }
    }
}

fn tcp_send(mut sock: TcpStream, buf: &[u8], pacing: Pacing, t0: Instant, c: &Counters) {
    let mut sent: u64 = 0;
    loop {
        if let Some(wait) = pacing.wait(sent, t0.elapsed()) {
            std::thread::sleep(wait);
        }
        for _ in 0..pacing.burst {
            // Counted as the kernel takes it, so a slow client still shows
            // progress within a large block.
            let mut rest = buf;
            c.writing.store(true, Relaxed);
            while !rest.is_empty() {
                match sock.write(rest) {
                    Ok(n) if n > 0 => {
                        rest = &rest[n..];
                        sent += n as u64;
                        Counters::add(&c.bytes, n as u64);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // A write fails once the test is stopped (or the peer
                    // is gone); either way this stream is over.
                    other => {
                        c.writing.store(false, Relaxed);
                        c.fail(other.err().as_ref());
                        return;
                    }
                }
            }
            c.writing.store(false, Relaxed);
            Counters::add(&c.blocks, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_is_average_since_start() {
        let p = Pacing {
            rate: 8_000_000,
            burst: 1,
        };
        assert_eq!(p.wait(0, Duration::ZERO), None);
        // 1 MB at 8 Mbit/s is due at 1 s.
        assert_eq!(
            p.wait(1_000_000, Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        assert_eq!(p.wait(1_000_000, Duration::from_millis(1200)), None);
        // Less than the slack ahead of schedule: keep sending.
        assert_eq!(p.wait(1_000_000, Duration::from_micros(999_500)), None);
        assert_eq!(
            p.wait(1_000_000, Duration::from_micros(998_000)),
            Some(Duration::from_millis(2))
        );
        assert_eq!(
            Pacing { rate: 0, burst: 1 }.wait(u64::MAX, Duration::ZERO),
            None
        );
    }

    #[test]
    fn payloads() {
        assert_eq!(&payload(12, true), b"012345678901");
        let mut block = PageBuf::zeroed(12).unwrap();
        fill_payload(&mut block, true);
        assert_eq!(&block[..], b"012345678901");
        let r = payload(4096, false);
        assert_eq!(r.len(), 4096);
        assert!(r.iter().any(|&b| b != r[0]));
    }

    #[test]
    fn tcp_stream_counts_and_stops() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let mut ds = DataStream::tcp(server, false).unwrap();
        let p = crate::protocol::params::TestParams::decode(b"{}").unwrap();
        ds.start(&p, Instant::now()).unwrap();
        client.write_all(&[7u8; 100_000]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while ds.sample().bytes < 100_000 {
            assert!(Instant::now() < deadline, "bytes not counted");
            std::thread::yield_now();
        }
        ds.stop();
        let mut rest = Vec::new();
        assert_eq!(
            client.read_to_end(&mut rest).unwrap(),
            0,
            "server closed its side"
        );
    }
}
