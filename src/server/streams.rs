//! Data streams: one OS thread per stream moving bytes (copy-free where the
//! kernel allows: see [`super::tcp_io`] and [`super::udp_batch`]), bumping
//! counters that the interval reporter reads without ever stopping the
//! stream (single writer, relaxed atomics, no lock per block).

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::tcp_io;
use crate::protocol::params::{DataPath, TestParams};
use crate::report::json::Json;
use crate::report::stats::{Sample, StreamKind, UdpSnapshot};
use crate::sys::{KernelTcpInfo, PageBuf, TcpInfo};

/// How a stream's thread moves its bytes, as the log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Method {
    /// The thread has not started.
    None = 0,
    /// TCP receive, copied into a buffer.
    Read,
    /// TCP or UDP receive, dropped in the kernel (`MSG_TRUNC`; UDP keeps
    /// each datagram's header).
    Discard,
    /// TCP send, copied from a buffer.
    Write,
    /// TCP send from an in-memory file.
    Sendfile,
    /// UDP receive, datagrams copied in batches (`recvmmsg`).
    Recvmmsg,
    /// UDP receive, coalesced datagrams (`UDP_GRO`).
    Gro,
    /// UDP send, one datagram per call.
    Send,
    /// UDP send, many datagrams per call (`UDP_SEGMENT`).
    Gso,
}

impl Method {
    const ALL: [Method; 9] = [
        Method::None,
        Method::Read,
        Method::Discard,
        Method::Write,
        Method::Sendfile,
        Method::Recvmmsg,
        Method::Gro,
        Method::Send,
        Method::Gso,
    ];

    /// The name the log gives it.
    pub fn name(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::Read => "read",
            Method::Discard => "discard",
            Method::Write => "write",
            Method::Sendfile => "sendfile",
            Method::Recvmmsg => "recvmmsg",
            Method::Gro => "gro",
            Method::Send => "send",
            Method::Gso => "gso",
        }
    }
}

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
    /// The [`Method`] the thread uses (it changes on a fallback).
    method: AtomicU8,
}

impl Counters {
    /// Records that the stream ended with `error`.
    pub fn fail(&self, error: Option<&std::io::Error>) {
        let errno = error.and_then(std::io::Error::raw_os_error).unwrap_or(0);
        self.os_error.store(errno, Relaxed);
        self.failed.store(true, Relaxed);
    }

    /// Records how the thread moves bytes from now on.
    pub fn set_method(&self, m: Method) {
        self.method.store(m as u8, Relaxed);
    }

    /// How the thread moves bytes.
    pub fn method(&self) -> Method {
        Method::ALL[usize::from(self.method.load(Relaxed)).min(Method::ALL.len() - 1)]
    }

    /// Whether the stream has not failed.
    pub fn failure_free(&self) -> bool {
        !self.failed.load(Relaxed)
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

    /// How many datagrams of `len` bytes may go out now, having sent `sent`
    /// bytes `elapsed` after the start (when [`Pacing::wait`] said "now"):
    /// those the schedule allows up to [`PACING_SLACK`] ahead, at least the
    /// burst; `u64::MAX` when unpaced.
    pub fn allowance(&self, sent: u64, elapsed: Duration, len: usize) -> u64 {
        if self.rate == 0 {
            return u64::MAX;
        }
        let due = (elapsed + PACING_SLACK).as_secs_f64() * self.rate as f64 / 8.0;
        let ahead = (due - sent as f64).max(0.0) / len.max(1) as f64;
        (ahead as u64).max(u64::from(self.burst))
    }
}

/// The body of a UDP stream's thread: counters to fill, a stop flag to
/// obey, the test's start (for pacing), how to move bytes.
pub type UdpBody = Box<dyn FnOnce(Arc<Counters>, Arc<AtomicBool>, Instant, DataPath) + Send>;

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

    /// Starts the stream's thread, moving bytes as `path` says. `t0` is the
    /// test start (for pacing).
    pub fn start(&mut self, p: &TestParams, path: DataPath, t0: Instant) -> std::io::Result<()> {
        let counters = Arc::clone(&self.counters);
        let name = format!("stream-{}", self.socket_no);
        let handle = match &mut self.io {
            Io::Tcp { run, .. } => {
                let Some(sock) = run.take() else {
                    return Ok(());
                };
                // One block, on a page boundary as stock's mapped buffers
                // are: see [`PageBuf`].
                // Discarding receives never touch it, so its pages are
                // never backed.
                let mut buf = PageBuf::zeroed(p.len as usize)?;
                if self.kind.sender {
                    fill_payload(&mut buf, p.repeating_payload);
                    let copies = tcp_io::blocks_per_call(buf.len());
                    let file = path.send_file.then(|| block_file(&buf, copies)).flatten();
                    let pacing = Pacing::of(p);
                    std::thread::Builder::new().name(name).spawn(move || {
                        let block = tcp_io::Block {
                            bytes: &buf,
                            file,
                            copies,
                        };
                        tcp_io::send(sock, block, pacing, t0, &counters);
                    })?
                } else {
                    let discard = path.discard;
                    std::thread::Builder::new()
                        .name(name)
                        .spawn(move || tcp_io::receive(sock, &mut buf, discard, &counters))?
                }
            }
            Io::Udp { stop, body } => {
                let Some(body) = body.take() else {
                    return Ok(());
                };
                let stop = Arc::clone(stop);
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || body(counters, stop, t0, path))?
            }
        };
        self.thread = Some(handle);
        Ok(())
    }

    /// A snapshot of the counters (and TCP_INFO of a sending TCP stream).
    pub fn sample(&self) -> Sample {
        self.sample_with_info().0
    }

    /// [`DataStream::sample`], with the whole TCP_INFO reading of a sending
    /// TCP stream (and how many bytes of it the kernel filled) that its
    /// `tcp` part was taken from: one system call for both.
    pub fn sample_with_info(&self) -> (Sample, Option<(KernelTcpInfo, usize)>) {
        let c = &self.counters;
        let info = match &self.io {
            Io::Tcp { probe, .. } if self.kind.sender => crate::sys::kernel_tcp_info(probe),
            _ => None,
        };
        let tcp = info
            .as_ref()
            .map(|(raw, len)| TcpInfo::from_kernel(raw, *len));
        let udp = self.kind.udp.then(|| UdpSnapshot {
            packets: c.packets.load(Relaxed),
            lost: c.lost.load(Relaxed),
            out_of_order: c.out_of_order.load(Relaxed),
            jitter: f64::from_bits(c.jitter_bits.load(Relaxed)),
        });
        let sample = Sample {
            bytes: c.bytes.load(Relaxed),
            tcp,
            udp,
        };
        (sample, info)
    }

    /// CPU time the stream's thread has used so far, seconds; `None`
    /// before it starts and once it is stopped.
    pub fn thread_cpu_secs(&self) -> Option<f64> {
        self.thread.as_ref().and_then(crate::sys::thread_cpu_secs)
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

/// The block in an in-memory file for `sendfile`; `None` (copying) where
/// the kernel has no memfd.
fn block_file(bytes: &[u8], copies: usize) -> Option<std::os::fd::OwnedFd> {
    crate::sys::memfd_with(bytes, copies)
        .inspect_err(|e| tracing::debug!(error = %e, "no in-memory file; copying"))
        .ok()
}

/// What the log's `webperf3` key says of how the streams moved bytes:
/// `mode` (`copy-free`, or `copy` under the server's `--copy`), and the
/// methods the server's sending and receiving streams used in the end
/// (`a+b` when they differ). `None` when no stream started.
pub fn data_path_json(streams: &[DataStream], copy: bool) -> Option<Json> {
    let methods = |sender: bool| {
        let mut names: Vec<&str> = Vec::new();
        for s in streams.iter().filter(|s| s.kind.sender == sender) {
            let m = s.counters.method();
            if m != Method::None && !names.contains(&m.name()) {
                names.push(m.name());
            }
        }
        (!names.is_empty()).then(|| names.join("+"))
    };
    let (send, receive) = (methods(true), methods(false));
    if send.is_none() && receive.is_none() {
        return None;
    }
    let mut out = Json::obj().with("mode", if copy { "copy" } else { "copy-free" });
    if let Some(m) = send {
        out.push("send", m);
    }
    if let Some(m) = receive {
        out.push("receive", m);
    }
    Some(out)
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
    fn allowance_follows_the_schedule_and_the_burst() {
        let p = Pacing {
            rate: 8_000_000,
            burst: 2,
        };
        // 1 MB/s: by 10 ms (+1 ms slack) 11 000 bytes are due.
        assert_eq!(p.allowance(0, Duration::from_millis(10), 1000), 11);
        assert_eq!(p.allowance(5_000, Duration::from_millis(10), 1000), 6);
        // Never less than the burst, even when on schedule.
        assert_eq!(p.allowance(11_000, Duration::from_millis(10), 1000), 2);
        assert_eq!(
            Pacing { rate: 0, burst: 1 }.allowance(0, Duration::ZERO, 1000),
            u64::MAX
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
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let mut ds = DataStream::tcp(server, false).unwrap();
        let p = crate::protocol::params::TestParams::decode(b"{}").unwrap();
        ds.start(&p, p.data_path(false), Instant::now()).unwrap();
        client.write_all(&[7u8; 100_000]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while ds.sample().bytes < 100_000 {
            assert!(Instant::now() < deadline, "bytes not counted");
            std::thread::yield_now();
        }
        let json = data_path_json(std::slice::from_ref(&ds), false).unwrap();
        assert_eq!(
            crate::report::json::to_compact(&json),
            r#"{"mode":"copy-free","receive":"discard"}"#
        );
        ds.stop();
        let mut rest = Vec::new();
        assert_eq!(
            client.read_to_end(&mut rest).unwrap(),
            0,
            "server closed its side"
        );
    }
}
