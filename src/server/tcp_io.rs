//! TCP stream loops: receiving in whole blocks (discarded in the kernel, or
//! copied as stock does) and sending blocks (from an in-memory file with
//! `sendfile`, or written from the buffer), each falling back to copying
//! where the kernel refuses the copy-free call.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::stream_parts::{Counters, Method, Pacing};
use crate::sys;

/// Receives in whole blocks of `buf.len()` bytes, as stock does: each call
/// asks for the rest of the current block, so the socket is drained in
/// block-sized steps rather than in whatever happens to be queued. Measured
/// on loopback against a single stock client: reading whatever is queued
/// (up to a block) made the client see 3–5× more reordering (its packets
/// sent partly from the receiver's CPU by our ACKs), spurious retransmits
/// and 10–20 % less throughput than stock 3.21; reading whole blocks brings
/// both back to stock's (see docs/performance.md).
///
/// With `discard`, the kernel drops the bytes (`MSG_TRUNC`) instead of
/// copying them into `buf`; the cadence and the counting are the same. A
/// shutdown by [`super::streams::DataStream::stop`] makes the blocked call
/// return 0.
pub fn receive(sock: TcpStream, buf: &mut [u8], mut discard: bool, c: &Counters) {
    c.set_method(if discard {
        Method::Discard
    } else {
        Method::Read
    });
    let mut filled = 0;
    loop {
        let got = if discard {
            sys::recv_discard(&sock, &mut buf[filled..])
        } else {
            (&sock).read(&mut buf[filled..])
        };
        match got {
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
            Err(e) if discard && sys::unsupported(&e) => {
                tracing::debug!(error = %e, "receiving without copying refused; copying");
                discard = false;
                c.set_method(Method::Read);
            }
            Err(e) => {
                c.fail(Some(&e));
                return;
            }
        }
    }
}

/// One block of payload to send: the bytes, and the same bytes in an
/// in-memory file when they go out with `sendfile`.
pub struct Block<'a> {
    /// The block's bytes (what `write` sends).
    pub bytes: &'a [u8],
    /// The block [`Block::copies`] times over in a file; `None` = write
    /// from `bytes`.
    pub file: Option<OwnedFd>,
    /// How many blocks the file holds back to back.
    pub copies: usize,
}

/// How many blocks of `len` bytes an unpaced `sendfile` stream hands the
/// kernel per call: about 1 MiB, so a call does more than one block's
/// worth of work.
pub fn blocks_per_call(len: usize) -> usize {
    ((1 << 20) / len.max(1)).clamp(1, 64)
}

/// Sends blocks until the socket fails (the test is stopped, or the peer is
/// gone), paced to `pacing`. Bytes are counted as the kernel takes them, so
/// a slow client still shows progress within a large block, and `writing`
/// is set for as long as a call may block (the stuck-sender rule reads it).
/// A file the kernel will not `sendfile` from is dropped and the rest is
/// written. An unpaced stream sending from a file hands the kernel all the
/// file's blocks per call; paced ones, one block per call as stock.
pub fn send(sock: TcpStream, mut block: Block<'_>, pacing: Pacing, t0: Instant, c: &Counters) {
    c.set_method(if block.file.is_some() {
        Method::Sendfile
    } else {
        Method::Write
    });
    let len = block.bytes.len();
    let per_call = if block.file.is_some() && pacing.rate == 0 {
        block.copies.max(1)
    } else {
        1
    };
    let chunk = per_call * len;
    let mut sent: u64 = 0;
    loop {
        if let Some(wait) = pacing.wait(sent, t0.elapsed()) {
            if !hung_up_within(&sock, wait) {
                // Woken by the clock (or a signal): look at the schedule
                // again. A hang-up falls through to a write that fails.
                continue;
            }
        }
        for _ in 0..pacing.burst {
            let mut done = 0;
            c.writing.store(true, Relaxed);
            while done < chunk {
                let result = match &block.file {
                    Some(file) => {
                        let mut offset = done as i64;
                        sys::sendfile(&sock, file, &mut offset, chunk - done)
                    }
                    None => (&sock).write(&block.bytes[done % len..]),
                };
                match result {
                    Ok(n) if n > 0 => {
                        done += n;
                        sent += n as u64;
                        Counters::add(&c.bytes, n as u64);
                        c.blocks.store(sent / len as u64, Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if block.file.is_some() && sys::unsupported(&e) => {
                        tracing::debug!(error = %e, "sendfile refused; writing");
                        block.file = None;
                        c.set_method(Method::Write);
                    }
                    // A send fails once the test is stopped (or the peer
                    // is gone); either way this stream is over.
                    other => {
                        c.writing.store(false, Relaxed);
                        c.fail(other.err().as_ref());
                        return;
                    }
                }
            }
            c.writing.store(false, Relaxed);
        }
    }
}

/// Sleeps up to `wait` on the socket: whether it was shut down (by
/// [`super::streams::DataStream::stop`]) or failed meanwhile. A paced
/// sender waits here, so its thread ends with its test however long the
/// pacing wait (`-b 1 -l 1M`: 97 days) instead of outliving it. No events
/// are asked for: only a hang-up or an error wakes it early, so a socket
/// that is merely writable does not spin.
fn hung_up_within(sock: &TcpStream, wait: std::time::Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    let ms = libc::c_int::try_from(wait.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    n > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Shutdown, TcpListener};
    use std::sync::Arc;
    use std::time::Duration;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        (client, server)
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::yield_now();
        }
    }

    /// Sends `total` bytes in odd-sized writes to a receiving loop and
    /// checks what it counted.
    fn receive_counts(discard: bool) -> Method {
        let (mut client, server) = pair();
        let probe = server.try_clone().unwrap();
        let c = Arc::new(Counters::default());
        let c2 = Arc::clone(&c);
        let t = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1000];
            receive(server, &mut buf, discard, &c2);
            buf
        });
        for chunk in [1, 999, 1000, 1, 2499, 500] {
            client.write_all(&vec![7u8; chunk]).unwrap();
        }
        wait_for("bytes counted", || c.bytes.load(Relaxed) == 5000);
        assert_eq!(c.blocks.load(Relaxed), 5);
        probe.shutdown(Shutdown::Both).unwrap();
        let buf = t.join().unwrap();
        assert_eq!(buf.contains(&7), !discard, "copied only when asked");
        assert!(c.failure_free());
        c.method()
    }

    #[test]
    fn receiving_counts_whole_blocks_either_way() {
        assert_eq!(receive_counts(true), Method::Discard);
        assert_eq!(receive_counts(false), Method::Read);
    }

    /// Runs a sender with `file` until `total` bytes arrived, checking
    /// them against the block; returns how it ended up sending.
    fn send_counts(file: impl FnOnce(&[u8]) -> Option<OwnedFd>) -> Method {
        let copies = 4;
        let (mut client, server) = pair();
        let probe = server.try_clone().unwrap();
        let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let c = Arc::new(Counters::default());
        let c2 = Arc::clone(&c);
        let file = file(&bytes);
        let sender_bytes = bytes.clone();
        let t = std::thread::spawn(move || {
            let block = Block {
                bytes: &sender_bytes,
                file,
                copies,
            };
            send(
                server,
                block,
                Pacing { rate: 0, burst: 1 },
                Instant::now(),
                &c2,
            );
        });
        let mut got = vec![0u8; 30_000];
        client.read_exact(&mut got).unwrap();
        for block in got.chunks(3000) {
            assert_eq!(block, &bytes[..]);
        }
        probe.shutdown(Shutdown::Both).unwrap();
        drop(client);
        t.join().unwrap();
        let counted = c.bytes.load(Relaxed);
        assert!(counted >= 30_000, "{counted}");
        assert!(c.blocks.load(Relaxed) >= 10);
        assert!(!c.writing.load(Relaxed));
        c.method()
    }

    #[test]
    fn sending_from_a_file_or_the_buffer() {
        assert_eq!(
            send_counts(|b| Some(sys::memfd_with(b, 4).unwrap())),
            Method::Sendfile
        );
        assert_eq!(send_counts(|_| None), Method::Write);
    }

    #[test]
    fn a_paced_sender_wakes_when_stopped() {
        let (mut client, server) = pair();
        let probe = server.try_clone().unwrap();
        let c = Arc::new(Counters::default());
        let c2 = Arc::clone(&c);
        let t = std::thread::spawn(move || {
            let bytes = vec![1u8; 1 << 20];
            let block = Block {
                bytes: &bytes,
                file: None,
                copies: 1,
            };
            // 1 bit/s: the second block is due in 97 days.
            send(
                server,
                block,
                Pacing { rate: 1, burst: 1 },
                Instant::now(),
                &c2,
            );
        });
        let mut got = vec![0u8; 1 << 20];
        client.read_exact(&mut got).unwrap();
        wait_for("the block counted", || c.bytes.load(Relaxed) == 1 << 20);
        let stopped = Instant::now();
        probe.shutdown(Shutdown::Both).unwrap();
        t.join().unwrap();
        assert!(
            stopped.elapsed() < Duration::from_secs(1),
            "{:?}",
            stopped.elapsed()
        );
    }

    #[test]
    fn a_file_the_kernel_refuses_falls_back_to_writing() {
        // sendfile from a directory fails with EINVAL, as on a kernel or
        // emulator without it.
        let method = send_counts(|_| Some(std::fs::File::open("/").unwrap().into()));
        assert_eq!(method, Method::Write);
    }
}
