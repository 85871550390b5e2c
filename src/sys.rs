//! Small OS facts: uname, process CPU time, TCP_INFO and congestion control,
//! the open-files limit, page-aligned buffers, and the thin wrappers the
//! copy-free data paths use (memfd, sendfile, `MSG_TRUNC`, UDP GSO/GRO).

use std::os::fd::AsRawFd;

/// A zeroed buffer that is its own anonymous mapping, so it starts on a page
/// boundary and goes back to the system when dropped. A data stream's block
/// buffer is one, as stock's mapped buffers are: a heap block of 128 KiB
/// starts 16 bytes into its mapping, so the kernel's copies split cache
/// lines (against the same client on loopback, medians of 5 alternating
/// rounds went from 38.9 to 40.3 Gbit/s receiving, 33.7 to 36.6 with
/// `--bidir` and 32.1 to 33.5 with `-R`). A mapping rather than an
/// over-allocated `Vec`: freeing a heap block of that size raises glibc's
/// dynamic mmap threshold, after which other blocks of about that size (the
/// dashboard's websocket buffers) stay on the heap after they are freed.
pub struct PageBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: PageBuf owns its mapping exclusively, like a Vec<u8>.
unsafe impl Send for PageBuf {}

impl PageBuf {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> std::io::Result<PageBuf> {
        // SAFETY: a fresh private anonymous mapping; nothing else aliases it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(p.cast::<u8>()).ok_or(std::io::ErrorKind::OutOfMemory)?;
        Ok(PageBuf { ptr, len })
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` mapped, initialised (zero-filled) bytes, owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `zeroed`, unmapped once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len.max(1));
        }
    }
}

/// Raises the soft limit on open files to the hard limit and returns the
/// limit in force. Every connection and data stream is a descriptor; under
/// load the per-port and dashboard limits, not a soft limit of 1024, should
/// be what refuses connections.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    // rlim_t is u64 on the targets built today, not on every libc.
    #[allow(clippy::unnecessary_cast)]
    Ok(rl.rlim_cur as u64)
}

/// `sysname nodename release version machine`, as stock's `system_info`.
pub fn system_info() -> String {
    let Some(u) = uname() else {
        return String::new();
    };
    [
        c_field(&u.sysname),
        c_field(&u.nodename),
        c_field(&u.release),
        c_field(&u.version),
        c_field(&u.machine),
    ]
    .join(" ")
}

/// The machine's host name (uname's nodename), if it has one.
pub fn hostname() -> Option<String> {
    Some(c_field(&uname()?.nodename)).filter(|h| !h.is_empty())
}

/// The addresses of the machine's interfaces (IPv6 link-local ones left
/// out: they need a zone to be used); empty if the kernel will not say.
pub fn interface_addresses() -> Vec<std::net::IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that freeifaddrs
    // releases; each entry's address, when not null, is a sockaddr of the
    // family it names.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut at = list;
        while let Some(entry) = at.as_ref() {
            if let Some(addr) = entry.ifa_addr.as_ref() {
                match i32::from(addr.sa_family) {
                    libc::AF_INET => {
                        let v4 = &*entry.ifa_addr.cast::<libc::sockaddr_in>();
                        let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                        out.push(ip.into());
                    }
                    libc::AF_INET6 => {
                        let v6 = &*entry.ifa_addr.cast::<libc::sockaddr_in6>();
                        let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
                        if !ip.is_unicast_link_local() {
                            out.push(ip.into());
                        }
                    }
                    _ => {}
                }
            }
            at = entry.ifa_next;
        }
        libc::freeifaddrs(list);
        out.sort();
        out.dedup();
        out
    }
}

fn uname() -> Option<libc::utsname> {
    // SAFETY: utsname is plain old data; uname fills it and NUL-terminates.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    (unsafe { libc::uname(&mut u) } == 0).then_some(u)
}

/// A NUL-terminated field of `utsname` as text.
fn c_field(f: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = f
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| u8::from_ne_bytes(c.to_ne_bytes()))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// CPU time used by this process so far: (user, system) seconds.
pub fn cpu_times() -> (f64, f64) {
    // SAFETY: rusage is plain old data filled by getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// CPU time a running thread of this process has used so far, seconds:
/// the thread's own CPU clock. `None` once the thread has finished (or
/// where the clock cannot be read).
pub fn thread_cpu_secs<T>(thread: &std::thread::JoinHandle<T>) -> Option<f64> {
    use std::os::unix::thread::JoinHandleExt;
    if thread.is_finished() {
        return None;
    }
    // std hands out an integer; libc's pthread_t is one on glibc and a
    // pointer on musl (the Pi's static build).
    #[allow(clippy::unnecessary_cast)]
    let id = thread.as_pthread_t() as libc::pthread_t;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the handle keeps the thread joinable, so its pthread_t stays
    // valid; the call writes one local clockid_t.
    if unsafe { libc::pthread_getcpuclockid(id, &mut clock) } != 0 {
        return None;
    }
    // SAFETY: timespec is plain old data filled by clock_gettime.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    // Once a thread has exited, the C library's clock for it names no
    // thread (or, with its id cleared, the calling one): a reading is
    // only the thread's if it was still running after it.
    if thread.is_finished() {
        return None;
    }
    Some(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

/// The fields of Linux `struct tcp_info` that the JSON reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// `tcpi_total_retrans`: retransmissions over the connection's life.
    pub total_retrans: u32,
    /// `tcpi_snd_cwnd × tcpi_snd_mss`, bytes.
    pub snd_cwnd_bytes: u64,
    /// `tcpi_snd_wnd`, bytes (kernels before 5.19 report none: `-1`).
    pub snd_wnd: i64,
    /// `tcpi_rtt`, µs.
    pub rtt: u32,
    /// `tcpi_rttvar`, µs.
    pub rttvar: u32,
    /// `tcpi_pmtu`.
    pub pmtu: u32,
    /// `tcpi_reord_seen`.
    pub reord_seen: u32,
}

/// Linux `struct tcp_info` up to `tcpi_snd_wnd` (kernel 5.19+), every field
/// by its kernel name without the `tcpi_` prefix; fields an older kernel does
/// not fill stay 0 ([`kernel_tcp_info`] says how many bytes were filled). Times are µs, sizes bytes
/// unless the kernel counts segments (`snd_cwnd`, `snd_ssthresh`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelTcpInfo {
    pub state: u8,
    pub ca_state: u8,
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    pub options: u8,
    pub wscale: u8,
    pub flags: u8,
    pub rto: u32,
    pub ato: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub fackets: u32,
    pub last_data_sent: u32,
    pub last_ack_sent: u32,
    pub last_data_recv: u32,
    pub last_ack_recv: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt: u32,
    pub rttvar: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub rcv_rtt: u32,
    pub rcv_space: u32,
    pub total_retrans: u32,
    pub pacing_rate: u64,
    pub max_pacing_rate: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub notsent_bytes: u32,
    pub min_rtt: u32,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
    pub delivery_rate: u64,
    pub busy_time: u64,
    pub rwnd_limited: u64,
    pub sndbuf_limited: u64,
    pub delivered: u32,
    pub delivered_ce: u32,
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub dsack_dups: u32,
    pub reord_seen: u32,
    pub rcv_ooopack: u32,
    pub snd_wnd: u32,
}

/// Hands memory the allocator holds free back to the system. glibc keeps
/// what threads freed in their arenas (after a load, a flood of sessions)
/// in the process's footprint until asked; musl gives it back by itself.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; it has no
    // preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Reads the whole TCP_INFO of a TCP socket and how many bytes the kernel
/// filled; `None` if the kernel refuses.
pub fn kernel_tcp_info(sock: &impl AsRawFd) -> Option<(KernelTcpInfo, usize)> {
    let mut raw = KernelTcpInfo::default();
    let mut len = std::mem::size_of::<KernelTcpInfo>() as libc::socklen_t;
    // SAFETY: the buffer is a repr(C) struct of the given length; the kernel
    // writes at most `len` bytes and returns how many.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut raw as *mut KernelTcpInfo).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some((raw, len as usize))
}

/// Reads TCP_INFO of a TCP socket; `None` if the kernel refuses.
pub fn tcp_info(sock: &impl AsRawFd) -> Option<TcpInfo> {
    let (raw, len) = kernel_tcp_info(sock)?;
    Some(TcpInfo::from_kernel(&raw, len))
}

impl TcpInfo {
    /// The reported fields of a [`kernel_tcp_info`] reading, `len` bytes of
    /// it filled by the kernel.
    pub fn from_kernel(raw: &KernelTcpInfo, len: usize) -> TcpInfo {
        let has_snd_wnd = len >= std::mem::size_of::<KernelTcpInfo>();
        TcpInfo {
            total_retrans: raw.total_retrans,
            snd_cwnd_bytes: u64::from(raw.snd_cwnd) * u64::from(raw.snd_mss),
            snd_wnd: if has_snd_wnd {
                i64::from(raw.snd_wnd)
            } else {
                -1
            },
            rtt: raw.rtt,
            rttvar: raw.rttvar,
            pmtu: raw.pmtu,
            reord_seen: raw.reord_seen,
        }
    }
}

/// Sets `SO_MAX_PACING_RATE` (bytes per second).
pub fn set_max_pacing_rate(sock: &impl AsRawFd, bytes_per_sec: u64) -> std::io::Result<()> {
    let rate: u64 = bytes_per_sec;
    // SAFETY: passing a u64 option value of its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MAX_PACING_RATE,
            (&rate as *const u64).cast(),
            std::mem::size_of::<u64>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets an `int` socket option.
pub fn set_int_option(
    sock: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: passing a c_int option value of its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets "don't fragment" (`IP_MTU_DISCOVER` = `IP_PMTUDISC_DO`) on an IPv4
/// (or IPv4-mapped) UDP socket.
pub fn set_dont_fragment(sock: &impl AsRawFd) -> std::io::Result<()> {
    set_int_option(
        sock,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DO,
    )
}

/// Opens the file at `path` for reading if it is a regular file. Anything
/// else (a FIFO, a device, a socket) is refused without blocking: opening a
/// FIFO for reading would wait for a writer, forever.
pub fn open_regular(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK only changes the open of a FIFO or device; reads of a
    // regular file block as usual.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

/// The text of an OS error number, as `strerror` gives it.
pub fn os_error_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    // std appends " (os error N)"; stock prints strerror alone.
    match text.rfind(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Whether `err` says the kernel (or an emulator such as qemu-user) lacks
/// a feature, so the copying path should be used instead.
pub fn unsupported(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::ENOPROTOOPT | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

fn check(rc: libc::ssize_t) -> std::io::Result<usize> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// An in-memory file (`memfd_create`) holding `data` `copies` times, for
/// [`sendfile`].
pub fn memfd_with(data: &[u8], copies: usize) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: a NUL-terminated name; the descriptor returned is ours.
    let fd = unsafe { libc::memfd_create(c"webperf3-block".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    for _ in 0..copies {
        file.write_all(data)?;
    }
    Ok(file.into())
}

/// `sendfile`: up to `count` bytes of `from` at `*offset` onto the socket
/// `to`, without passing through user space; advances `*offset`.
pub fn sendfile(
    to: &impl AsRawFd,
    from: &impl AsRawFd,
    offset: &mut i64,
    count: usize,
) -> std::io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: two descriptors and a local offset the kernel updates.
    let n = check(unsafe { libc::sendfile(to.as_raw_fd(), from.as_raw_fd(), &mut off, count) })?;
    *offset = off as i64;
    Ok(n)
}

/// Receives up to `len` bytes of a TCP stream and discards them in the
/// kernel (`MSG_TRUNC`): nothing is copied into `buf`, which only has to be
/// `len` bytes of this process's memory (an emulator may check it).
pub fn recv_discard(sock: &impl AsRawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes; with MSG_TRUNC on TCP
    // the kernel writes none of them.
    check(unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
        )
    })
}

/// `UDP_SEGMENT` (Linux 4.18): the socket option and control message
/// giving the segment size of a GSO send.
pub const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` (Linux 5.0): the socket option asking for coalesced
/// receives, and the control message giving their segment size.
pub const UDP_GRO: libc::c_int = 104;

/// Asks the kernel to hand this UDP socket coalesced datagrams (`UDP_GRO`).
pub fn set_udp_gro(sock: &impl AsRawFd) -> std::io::Result<()> {
    set_int_option(sock, libc::SOL_UDP, UDP_GRO, 1)
}

/// Space for one control message carrying a `u16` (`UDP_SEGMENT`) or an
/// `int` (`UDP_GRO`), aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Default)]
pub struct SegmentCmsg([u8; 32]);

impl SegmentCmsg {
    /// Bytes a control message with a `T` payload takes.
    fn space<T>() -> usize {
        // SAFETY: CMSG_SPACE is arithmetic.
        unsafe { libc::CMSG_SPACE(std::mem::size_of::<T>() as u32) as usize }
    }

    /// The segment size a `UDP_GRO` control message in `hdr` gives, if any.
    pub fn gro_size(hdr: &libc::msghdr) -> Option<usize> {
        if hdr.msg_controllen == 0 || hdr.msg_control.is_null() {
            return None;
        }
        // SAFETY: the kernel filled msg_control (of msg_controllen bytes);
        // CMSG_FIRSTHDR/NXTHDR stay within it.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                    return usize::try_from(v).ok().filter(|&v| v > 0);
                }
                c = libc::CMSG_NXTHDR(hdr, c);
            }
        }
        None
    }
}

/// Prepares `hdr` to receive a `UDP_GRO` control message into `space`.
pub fn expect_gro_cmsg(hdr: &mut libc::msghdr, space: &mut SegmentCmsg) {
    hdr.msg_control = space.0.as_mut_ptr().cast();
    hdr.msg_controllen = SegmentCmsg::space::<libc::c_int>() as _;
}

/// Sends `buf` on a connected UDP socket as datagrams of `segment` bytes
/// (the last may be shorter) in one call (`UDP_SEGMENT`, GSO). Returns the
/// bytes sent: all of `buf`, or an error.
pub fn send_segments(sock: &impl AsRawFd, buf: &[u8], segment: u16) -> std::io::Result<usize> {
    let mut space = SegmentCmsg::default();
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; zeroed is a valid empty header.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = space.0.as_mut_ptr().cast();
    hdr.msg_controllen = SegmentCmsg::space::<u16>() as _;
    // SAFETY: the control buffer holds one message with a u16 payload;
    // iov points at `buf`, which the kernel only reads.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&hdr);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
        check(libc::sendmsg(sock.as_raw_fd(), &hdr, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_buffers_start_on_a_page_and_hold_their_length() {
        for len in [0, 1, 1400, 131_072] {
            let mut b = PageBuf::zeroed(len).unwrap();
            assert_eq!(b.as_ptr() as usize % 4096, 0);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0));
            b.fill(7);
            assert!(b.iter().all(|&x| x == 7));
        }
    }

    #[test]
    fn uname_has_five_fields() {
        let info = system_info();
        assert!(info.starts_with("Linux "), "{info}");
        assert!(info.split(' ').count() >= 5);
    }

    #[test]
    fn a_threads_own_cpu_clock() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let busy = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        let woken = std::sync::Arc::clone(&stop);
        let idle = std::thread::spawn(move || {
            while !woken.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::park();
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while thread_cpu_secs(&busy).unwrap_or(0.0) < 0.01 {
            assert!(std::time::Instant::now() < deadline, "no CPU time counted");
            std::thread::yield_now();
        }
        assert!(thread_cpu_secs(&idle).expect("a parked thread's clock") < 0.01);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        idle.thread().unpark();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !busy.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread did not end"
            );
            std::thread::yield_now();
        }
        // Not the clock of whichever thread asks.
        assert_eq!(thread_cpu_secs(&busy), None);
        busy.join().unwrap();
        idle.join().unwrap();
    }

    #[test]
    fn tcp_info_of_a_connected_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let info = tcp_info(&c).expect("TCP_INFO on Linux");
        assert!(info.snd_cwnd_bytes > 0);
        assert!(info.pmtu > 0);
    }

    #[test]
    fn unsupported_errors_are_the_fallback_ones() {
        for errno in [
            libc::EINVAL,
            libc::ENOPROTOOPT,
            libc::ENOSYS,
            libc::EOPNOTSUPP,
        ] {
            assert!(unsupported(&std::io::Error::from_raw_os_error(errno)));
        }
        for errno in [libc::EPIPE, libc::ECONNRESET, libc::EAGAIN] {
            assert!(!unsupported(&std::io::Error::from_raw_os_error(errno)));
        }
    }

    #[test]
    fn sendfile_from_a_memfd_and_discarding_receive() {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let block = memfd_with(b"01234", 2).unwrap();
        let mut off = 0;
        assert_eq!(sendfile(&s, &block, &mut off, 10).unwrap(), 10);
        assert_eq!(off, 10);
        let mut got = [0u8; 10];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"0123401234");
        use std::io::Write;
        c.write_all(&[9u8; 10]).unwrap();
        let mut buf = [0u8; 10];
        let mut n = 0;
        while n < 10 {
            n += recv_discard(&s, &mut buf[n..]).unwrap();
        }
        assert_eq!(buf, [0u8; 10], "discarded, not copied");
        s.write_all(b"x").unwrap();
    }

    #[test]
    fn os_error_text_has_no_suffix() {
        let e = std::io::Error::from_raw_os_error(libc::EBADF);
        assert_eq!(os_error_text(&e), "Bad file descriptor");
    }
}
