//! UDP stream loops in batches: receiving many datagrams per call
//! (`recvmmsg`, with coalesced datagrams under `UDP_GRO`, or only their
//! headers under `MSG_TRUNC`) and sending many per call (`UDP_SEGMENT`),
//! each datagram still numbered, stamped and accounted one by one with
//! stock's arithmetic. Where the kernel refuses a batching feature the loop
//! carries on without it.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::stream_parts::{payload, Counters, Method, Pacing};
use super::udp_peer;
use crate::protocol::udp::{decode_header, encode_header, Header, Receiver, Stamp};
use crate::protocol::udp_pace::ReceiverPace;
use crate::sys::{self, PageBuf, SegmentCmsg};

/// How often a blocked stream thread looks at its stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(100);

/// Largest UDP payload, and so the largest coalesced receive.
const MAX_DATAGRAM: usize = 65_507;
/// Most segments the kernel takes in one `UDP_SEGMENT` send.
const MAX_SEGMENTS: usize = 64;
/// Bytes of header read per datagram when receiving with `MSG_TRUNC`.
const HEADER_LEN: usize = 16;

/// The monotonic clock as the UDP header carries it.
fn now_stamp() -> Stamp {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Stamp::from_nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// What a receiving stream needs.
#[derive(Debug, Clone, Copy)]
pub struct RecvSpec {
    /// Datagram size of the test.
    pub len: usize,
    /// 64-bit sequence numbers.
    pub counters_64bit: bool,
    /// Ask for coalesced datagrams (`UDP_GRO`).
    pub gro: bool,
    /// Read only each datagram's header (`MSG_TRUNC`), when not coalescing.
    pub discard: bool,
}

/// Accounts one datagram of `size` bytes whose first bytes are `head`:
/// counted (as at most `len` bytes, as stock) when its header decodes.
fn account_one(
    head: &[u8],
    size: usize,
    len: usize,
    c64: bool,
    rx: &mut Receiver,
    arrived: Stamp,
) -> u64 {
    let got = size.min(len);
    match decode_header(&head[..head.len().min(got)], c64) {
        Some(h) => {
            rx.on_datagram(h, arrived);
            got as u64
        }
        None => 0,
    }
}

/// Accounts one received message: `data` is what was copied of it, `size`
/// its real length, `segment` the size of the datagrams it coalesces (GRO;
/// the last may be shorter). Returns the bytes counted.
pub fn account(
    data: &[u8],
    size: usize,
    segment: Option<usize>,
    spec: &RecvSpec,
    rx: &mut Receiver,
    arrived: Stamp,
) -> u64 {
    let (len, c64) = (spec.len, spec.counters_64bit);
    match segment {
        Some(g) if size > g => data[..size.min(data.len())]
            .chunks(g)
            .map(|d| account_one(d, d.len(), len, c64, rx, arrived))
            .sum(),
        _ => account_one(data, size, len, c64, rx, arrived),
    }
}

/// Receives until `stop`, in batches, accounting each datagram with stock's
/// arithmetic and publishing the counters once per batch.
pub fn receive(sock: UdpSocket, spec: RecvSpec, c: &Counters, stop: &AtomicBool) {
    if let Err(e) = sock.set_read_timeout(Some(STOP_POLL)) {
        c.fail(Some(&e));
        return;
    }
    let mut spec = RecvSpec {
        len: spec.len.max(16),
        ..spec
    };
    if spec.gro {
        if let Err(e) = sys::set_udp_gro(&sock) {
            tracing::debug!(error = %e, "no UDP GRO; receiving datagram by datagram");
            spec.gro = false;
        }
    }
    let (method, slot, flags) = if spec.gro {
        (Method::Gro, MAX_DATAGRAM, 0)
    } else if spec.discard {
        (Method::Discard, HEADER_LEN, libc::MSG_TRUNC)
    } else {
        (Method::Recvmmsg, spec.len, 0)
    };
    c.set_method(method);
    // Coalesced receives need room for 64 KiB each; the mapping's pages
    // are backed only as datagrams reach them.
    let batch = if spec.gro {
        32
    } else {
        (256 * 1024 / slot).clamp(1, 64)
    };
    let mut bufs = match PageBuf::zeroed(batch * slot) {
        Ok(b) => b,
        Err(e) => {
            c.fail(Some(&e));
            return;
        }
    };
    let mut iovs: Vec<libc::iovec> = bufs
        .chunks_mut(slot)
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut cmsgs: Vec<SegmentCmsg> = (0..batch).map(|_| SegmentCmsg::default()).collect();
    // SAFETY: mmsghdr is plain old data; zeroed is a valid empty header.
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .zip(cmsgs.iter_mut())
        .map(|(iov, cmsg)| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            if spec.gro {
                sys::expect_gro_cmsg(&mut m.msg_hdr, cmsg);
            }
            m
        })
        .collect();
    let mut rx = Receiver::default();
    let mut bytes: u64 = 0;
    while !stop.load(Relaxed) {
        if spec.gro {
            // The kernel shrinks msg_controllen to what it wrote.
            for (m, cmsg) in msgs.iter_mut().zip(cmsgs.iter_mut()) {
                sys::expect_gro_cmsg(&mut m.msg_hdr, cmsg);
            }
        }
        // SAFETY: msgs point into iovs and cmsgs, which point into bufs;
        // all live and unmoved for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as _,
                (libc::MSG_WAITFORONE | flags) as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => continue,
                // An ICMP error from an earlier datagram; the stream goes on.
                io::ErrorKind::ConnectionRefused => continue,
                _ => {
                    c.fail(Some(&err));
                    return;
                }
            }
        }
        let arrived = now_stamp();
        if c.restart.swap(false, Relaxed) {
            rx.restart_jitter();
        }
        for (i, m) in msgs.iter().take(n as usize).enumerate() {
            let size = m.msg_len as usize;
            let data = &bufs[i * slot..i * slot + size.min(slot)];
            let segment = if spec.gro {
                SegmentCmsg::gro_size(&m.msg_hdr)
            } else {
                None
            };
            bytes += account(data, size, segment, &spec, &mut rx, arrived);
        }
        c.bytes.store(bytes, Relaxed);
        c.blocks.store(rx.max_seq, Relaxed);
        c.packets.store(rx.max_seq, Relaxed);
        c.lost.store(rx.lost, Relaxed);
        c.out_of_order.store(rx.out_of_order, Relaxed);
        c.jitter_bits.store(rx.jitter.to_bits(), Relaxed);
    }
}

/// What a sending stream needs.
#[derive(Debug, Clone, Copy)]
pub struct SendSpec {
    /// Datagram size.
    pub len: usize,
    /// 64-bit sequence numbers.
    pub counters_64bit: bool,
    /// `0123456789…` filler instead of random bytes.
    pub repeating_payload: bool,
    /// Rate and burst.
    pub pacing: Pacing,
    /// Send many datagrams per call (`UDP_SEGMENT`).
    pub gso: bool,
}

/// Datagrams per `UDP_SEGMENT` send of `len`-byte datagrams: as many as fit
/// in one 64 KiB send, at most the kernel's 64; under 2 means no batching.
pub fn segments_per_send(len: usize) -> usize {
    (MAX_DATAGRAM / len.max(1)).min(MAX_SEGMENTS)
}

/// Sends datagrams of `len` bytes until `stop`, paced so the average rate
/// since `t0` stays at the target. With GSO, the datagrams the schedule
/// allows go out in one call, each with its own number and time stamp.
/// Without a target, and with the receiver a socket on this host, the
/// sender is paced to what that socket takes ([`ReceiverPace`]), so the
/// client's own receive limit is not reported as loss.
pub fn send(sock: UdpSocket, spec: SendSpec, t0: Instant, c: &Counters, stop: &AtomicBool) {
    let len = spec.len.max(16);
    let mut gso = spec.gso && segments_per_send(len) >= 2 && len <= usize::from(u16::MAX);
    let per_call = if gso { segments_per_send(len) } else { 1 };
    let one = payload(len, spec.repeating_payload);
    let mut buf = one.repeat(per_call);
    if let Err(e) = sock.set_write_timeout(Some(STOP_POLL)) {
        c.fail(Some(&e));
        return;
    }
    c.set_method(if gso { Method::Gso } else { Method::Send });
    let mut receiver = receiver_pace(&sock, &spec);
    let mut seq: u64 = 0;
    let mut sent: u64 = 0;
    // Datagrams still to go before the schedule is looked at again.
    let mut owed: u64 = 0;
    while !stop.load(Relaxed) {
        if owed == 0 {
            if let Some(wait) = spec.pacing.wait(sent, t0.elapsed()) {
                std::thread::sleep(wait.min(STOP_POLL));
                continue;
            }
            owed = if gso {
                spec.pacing.allowance(sent, t0.elapsed(), len)
            } else {
                u64::from(spec.pacing.burst)
            };
        }
        let mut n = if gso {
            owed.min(per_call as u64) as usize
        } else {
            1
        };
        if let Some((pace, ours, peer)) = &mut receiver {
            let now = t0.elapsed();
            if pace.check_due(now) {
                if let Some(drops) = udp_peer::peer_drops(*ours, *peer) {
                    pace.check(now, sent, drops, len);
                }
            }
            let allowed = pace.allowance(now, sent, len);
            if allowed == 0 {
                std::thread::sleep(pace.wait(now, sent, len).min(STOP_POLL));
                continue;
            }
            n = n.min(usize::try_from(allowed).unwrap_or(usize::MAX));
        }
        let stamp = now_stamp();
        for (i, d) in buf.chunks_mut(len).take(n).enumerate() {
            let header = Header {
                sent: stamp,
                seq: seq + 1 + i as u64,
            };
            encode_header(d, header, spec.counters_64bit);
        }
        let result = if n > 1 {
            sys::send_segments(&sock, &buf[..n * len], len as u16)
        } else {
            sock.send(&buf[..len])
        };
        match result {
            Ok(bytes) => {
                let datagrams = if n > 1 { n as u64 } else { 1 };
                seq += datagrams;
                sent += bytes as u64;
                owed = owed.saturating_sub(datagrams);
                c.bytes.store(sent, Relaxed);
                c.packets.store(seq, Relaxed);
                c.blocks.store(seq, Relaxed);
            }
            Err(e) if n > 1 && sys::unsupported(&e) => {
                tracing::debug!(error = %e, "no UDP GSO; sending datagram by datagram");
                gso = false;
                owed = owed.min(u64::from(spec.pacing.burst));
                c.set_method(Method::Send);
            }
            // A full queue: look at the schedule again, without using up
            // a number.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                owed = 0;
            }
            // The client's port is closed: it has gone.
            Err(e) => {
                c.fail(Some(&e));
                return;
            }
        }
    }
}

/// An unlimited batching sender's pacing to its receiver, with the two
/// addresses that find the receiver's socket: `None` for a paced test, a
/// sender of one datagram per call, or a receiver whose drops cannot be
/// read (not on this host).
fn receiver_pace(
    sock: &UdpSocket,
    spec: &SendSpec,
) -> Option<(ReceiverPace, SocketAddr, SocketAddr)> {
    // One datagram per call is stock's way, and its own cost keeps it
    // near what a client takes: only batches outrun a client.
    let batched = spec.gso && segments_per_send(spec.len.max(16)) >= 2;
    if spec.pacing.rate != 0 || !batched {
        return None;
    }
    let (ours, peer) = (sock.local_addr().ok()?, sock.peer_addr().ok()?);
    udp_peer::peer_drops(ours, peer)?;
    Some((ReceiverPace::default(), ours, peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn spec(len: usize) -> RecvSpec {
        RecvSpec {
            len,
            counters_64bit: false,
            gro: true,
            discard: false,
        }
    }

    fn datagram(seq: u64, len: usize, micros: u32) -> Vec<u8> {
        let mut d = vec![0xaa; len];
        let sent = Stamp { secs: 1, micros };
        encode_header(&mut d, Header { sent, seq }, false);
        d
    }

    fn stamp(micros: u32) -> Stamp {
        Stamp { secs: 2, micros }
    }

    fn state(rx: &Receiver) -> (u64, u64, u64, u64) {
        (rx.max_seq, rx.lost, rx.out_of_order, rx.jitter.to_bits())
    }

    /// The same datagrams, one message each and coalesced (GRO), give the
    /// same bytes, loss, reordering and jitter.
    #[test]
    fn coalesced_datagrams_count_as_single_ones() {
        let len = 1000;
        // Out of order, a gap (5 lost, then 7 late), a short last one.
        let seqs = [1u64, 2, 4, 3, 6, 8, 9, 7];
        let sizes = [len, len, len, len, len, len, len, 300];
        let mut one_by_one = Receiver::default();
        let mut coalesced = Receiver::default();
        let mut bytes_one = 0;
        for (k, (&seq, &size)) in seqs.iter().zip(&sizes).enumerate() {
            let d = datagram(seq, size, 10 * k as u32);
            bytes_one += account(&d, size, None, &spec(len), &mut one_by_one, stamp(k as u32));
        }
        // Coalesced as the kernel hands them over: two messages of four.
        let mut bytes_gro = 0;
        for (m, group) in seqs.chunks(4).enumerate() {
            let mut msg = Vec::new();
            for (j, &seq) in group.iter().enumerate() {
                let k = m * 4 + j;
                msg.extend(datagram(seq, sizes[k], 10 * k as u32));
            }
            bytes_gro += account(
                &msg,
                msg.len(),
                Some(len),
                &spec(len),
                &mut coalesced,
                stamp(0),
            );
        }
        assert_eq!(bytes_one, bytes_gro);
        assert_eq!(bytes_one, 7 * 1000 + 300);
        // Loss and reordering are the same; jitter differs here only
        // because the arrival stamps do (see the next test).
        let (max, lost, ooo, _) = state(&one_by_one);
        assert_eq!((max, lost, ooo), (9, 1, 2));
        let (max2, lost2, ooo2, _) = state(&coalesced);
        assert_eq!((max2, lost2, ooo2), (max, lost, ooo));
    }

    /// Jitter too is the same when the arrival stamps are.
    #[test]
    fn coalesced_jitter_equals_single_jitter() {
        let len = 200;
        let mut a = Receiver::default();
        let mut b = Receiver::default();
        let mut msg = Vec::new();
        for seq in 1..=5u64 {
            let d = datagram(seq, len, 7 * seq as u32 * seq as u32);
            account(&d, len, None, &spec(len), &mut a, stamp(100));
            msg.extend(d);
        }
        account(&msg, msg.len(), Some(len), &spec(len), &mut b, stamp(100));
        assert_eq!(state(&a), state(&b));
        assert!(a.jitter > 0.0);
    }

    /// A datagram read only as far as its header still counts its full
    /// size (at most the test's length), as stock's `MSG_TRUNC` receive.
    #[test]
    fn header_only_datagrams_count_their_size() {
        let s = RecvSpec {
            discard: true,
            gro: false,
            ..spec(1000)
        };
        let mut rx = Receiver::default();
        let d = datagram(1, 1000, 0);
        assert_eq!(
            account(&d[..HEADER_LEN], 1000, None, &s, &mut rx, stamp(0)),
            1000
        );
        assert_eq!(
            account(&d[..HEADER_LEN], 4000, None, &s, &mut rx, stamp(0)),
            1000
        );
        // Too short for a header: not counted.
        assert_eq!(account(&d[..8], 8, None, &s, &mut rx, stamp(0)), 0);
        assert_eq!(rx.max_seq, 1);
    }

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        (a, b)
    }

    /// Runs a sender for `count` datagrams into a receiver, both with the
    /// given batching; returns (sent, received) counters and methods.
    fn round_trip(
        gso: bool,
        gro: bool,
        discard: bool,
        len: usize,
        no_checksums: bool,
    ) -> (Arc<Counters>, Arc<Counters>) {
        let (tx, rxs) = pair();
        if no_checksums {
            /// `SO_NO_CHECK` (Linux).
            const SO_NO_CHECK: libc::c_int = 11;
            sys::set_int_option(&tx, libc::SOL_SOCKET, SO_NO_CHECK, 1).unwrap();
        }
        socket2::SockRef::from(&rxs)
            .set_recv_buffer_size(8 << 20)
            .unwrap();
        let (sc, rc) = (Arc::new(Counters::default()), Arc::new(Counters::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let recv_thread = {
            let (rc, stop) = (Arc::clone(&rc), Arc::clone(&stop));
            let s = RecvSpec {
                len,
                counters_64bit: true,
                gro,
                discard,
            };
            std::thread::spawn(move || receive(rxs, s, &rc, &stop))
        };
        let send_stop = Arc::new(AtomicBool::new(false));
        let send_thread = {
            let (sc, send_stop) = (Arc::clone(&sc), Arc::clone(&send_stop));
            let s = SendSpec {
                len,
                counters_64bit: true,
                repeating_payload: true,
                // 40 Mbit/s: slow enough that nothing is dropped.
                pacing: Pacing {
                    rate: 40_000_000,
                    burst: 1,
                },
                gso,
            };
            std::thread::spawn(move || send(tx, s, Instant::now(), &sc, &send_stop))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while sc.packets.load(Relaxed) < 2000 {
            assert!(Instant::now() < deadline, "not sent");
            std::thread::yield_now();
        }
        send_stop.store(true, Relaxed);
        send_thread.join().unwrap();
        let sent = sc.packets.load(Relaxed);
        while rc.packets.load(Relaxed) < sent {
            assert!(Instant::now() < deadline, "not received");
            std::thread::yield_now();
        }
        stop.store(true, Relaxed);
        recv_thread.join().unwrap();
        (sc, rc)
    }

    fn check_exact(sc: &Counters, rc: &Counters) {
        assert_eq!(sc.bytes.load(Relaxed), rc.bytes.load(Relaxed));
        assert_eq!(rc.lost.load(Relaxed), 0);
        assert_eq!(rc.out_of_order.load(Relaxed), 0);
        assert!(sc.failure_free() && rc.failure_free());
    }

    #[test]
    fn batched_send_and_receive_count_exactly() {
        let (sc, rc) = round_trip(true, true, false, 1200, false);
        check_exact(&sc, &rc);
        assert_eq!((sc.method(), rc.method()), (Method::Gso, Method::Gro));
        let (sc, rc) = round_trip(false, false, true, 1200, false);
        check_exact(&sc, &rc);
        assert_eq!((sc.method(), rc.method()), (Method::Send, Method::Discard));
        let (sc, rc) = round_trip(false, false, false, 1200, false);
        check_exact(&sc, &rc);
        assert_eq!((sc.method(), rc.method()), (Method::Send, Method::Recvmmsg));
    }

    #[test]
    fn gso_the_kernel_refuses_falls_back_to_single_sends() {
        // The kernel refuses UDP_SEGMENT (EINVAL) on a socket without
        // checksums (SO_NO_CHECK), as a kernel or emulator without GSO
        // would: the sender goes on one datagram at a time, losing no
        // number.
        let (sc, rc) = round_trip(true, true, false, 1200, true);
        check_exact(&sc, &rc);
        assert_eq!(sc.method(), Method::Send);
    }

    #[test]
    fn segments_per_send_fit_one_send() {
        assert_eq!(segments_per_send(1460), 44);
        assert_eq!(segments_per_send(16), 64);
        assert_eq!(segments_per_send(40_000), 1);
    }

    #[test]
    fn an_unlimited_sender_backs_off_when_its_receiver_drops() {
        // The receiver on this host never reads: once its buffer is full,
        // all it is sent is dropped, and the sender backs off to a trickle.
        let (tx, idle_rx) = pair();
        let c = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
            let s = SendSpec {
                len: 1400,
                counters_64bit: false,
                repeating_payload: true,
                pacing: Pacing { rate: 0, burst: 1 },
                gso: true,
            };
            std::thread::spawn(move || send(tx, s, Instant::now(), &c, &stop))
        };
        // A window of sending time, measured: not a wait for the thread.
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Relaxed);
        sender.join().unwrap();
        let sent = c.packets.load(Relaxed);
        // Unpaced, this loop sends hundreds of thousands in 300 ms.
        assert!(sent < 20_000, "{sent} datagrams sent to a full receiver");
        assert!(sent > 0);
        drop(idle_rx);
    }
}
