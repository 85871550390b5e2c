//! Data streams: one OS thread per stream moving bytes (copy-free where the
//! kernel allows: see [`super::tcp_io`] and [`super::udp_batch`]), bumping
//! counters that the interval reporter reads without ever stopping the
//! stream (single writer, relaxed atomics, no lock per block).

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::stream_parts::{fill_payload, Counters, Method, Pacing};
use super::tcp_io;
use crate::json::Json;
use crate::protocol::params::{DataPath, TestParams};
use crate::report::stats::{Sample, StreamKind, UdpSnapshot};
use crate::send_method::{Choice, SendMethod};
use crate::sys::{KernelTcpInfo, PageBuf, TcpInfo};

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

    /// [`DataStream::sample`], with the whole TCP_INFO reading of a TCP
    /// stream (and how many bytes of it the kernel filled): for a sending
    /// stream, the one its `tcp` part was taken from (one system call for
    /// both); a receiving stream's sample has no `tcp` part.
    pub fn sample_with_info(&self) -> (Sample, Option<(KernelTcpInfo, usize)>) {
        let c = &self.counters;
        let info = match &self.io {
            Io::Tcp { probe, .. } => crate::sys::kernel_tcp_info(probe),
            _ => None,
        };
        let tcp = info
            .as_ref()
            .filter(|_| self.kind.sender)
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

    /// Whether the stream's socket has `TCP_NODELAY` (the client's `-N`),
    /// as the kernel says; `None` for UDP or when it cannot be read.
    pub fn tcp_nodelay(&self) -> Option<bool> {
        match &self.io {
            Io::Tcp { probe, .. } => probe.nodelay().ok(),
            Io::Udp { .. } => None,
        }
    }

    /// Stops a sending stream's sending, its socket kept open: a TCP
    /// stream is shut down for writing (the peer sees the end of the data),
    /// a UDP stream's thread ends. Receiving streams go on.
    pub fn stop_sending(&self) {
        if !self.kind.sender {
            return;
        }
        match &self.io {
            Io::Tcp { probe, .. } => {
                let _ = probe.shutdown(Shutdown::Write);
            }
            Io::Udp { stop, .. } => stop.store(true, Relaxed),
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
/// (`a+b` when they differ). With sending TCP streams, `send_reason` says
/// why their method was chosen (`choice`), or that the kernel refused
/// `sendfile` and they fell back to writing. `None` when no stream started.
pub fn data_path_json(streams: &[DataStream], copy: bool, choice: Option<&Choice>) -> Option<Json> {
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
    let tcp_send = |m: Method| streams.iter().any(|s| s.counters.method() == m);
    let reason = choice.filter(|_| tcp_send(Method::Write) || tcp_send(Method::Sendfile));
    if let Some(m) = send {
        out.push("send", m);
    }
    if let Some(choice) = reason {
        let refused = choice.method == SendMethod::Sendfile && tcp_send(Method::Write);
        let why = if refused {
            "fallback: sendfile refused by the kernel"
        } else {
            choice.reason.as_str()
        };
        out.push("send_reason", why);
    }
    if let Some(m) = receive {
        out.push("receive", m);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let json = data_path_json(std::slice::from_ref(&ds), false, None).unwrap();
        assert_eq!(
            crate::json::to_compact(&json),
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

    #[test]
    fn a_sendfile_the_kernel_refused_is_named_as_the_reason() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let ds = DataStream::tcp(l.accept().unwrap().0, true).unwrap();
        let reason = |chosen: SendMethod, used: Method| {
            ds.counters.set_method(used);
            let choice = Choice {
                method: chosen,
                reason: "calibrated".into(),
            };
            let json = data_path_json(std::slice::from_ref(&ds), false, Some(&choice)).unwrap();
            crate::json::to_compact(&json)
        };
        assert_eq!(
            reason(SendMethod::Sendfile, Method::Sendfile),
            r#"{"mode":"copy-free","send":"sendfile","send_reason":"calibrated"}"#
        );
        assert_eq!(
            reason(SendMethod::Sendfile, Method::Write),
            r#"{"mode":"copy-free","send":"write","send_reason":"fallback: sendfile refused by the kernel"}"#
        );
        assert_eq!(
            reason(SendMethod::Copy, Method::Write),
            r#"{"mode":"copy-free","send":"write","send_reason":"calibrated"}"#
        );
    }
}
