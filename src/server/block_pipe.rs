//! A TCP sender's payload held in a pipe: the block's pages are put in a
//! pipe once (spliced from its in-memory file), and each send duplicates
//! them into a second pipe (`tee`: page references, no bytes) and splices
//! that onto the socket. No byte is copied, and unlike `sendfile` no page
//! of the file is looked up again per call: measured on loopback with a
//! discarding receiver, 1 MiB per call, sender CPU per GB 0.15–0.17 s
//! against `sendfile`'s 0.17–0.21 s (docs/performance.md).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Two pipes holding a block of `len` bytes: `source` always full, `work`
/// what is still to go onto the socket from the last duplication.
#[derive(Debug)]
pub struct BlockPipe {
    /// The in-memory file, kept open: its pages in the pipes stay its own
    /// (a page cut from a closed file no longer splices).
    _file: OwnedFd,
    source: (OwnedFd, OwnedFd),
    work: (OwnedFd, OwnedFd),
    len: usize,
    /// Bytes in `work` not yet on the socket.
    queued: usize,
}

impl BlockPipe {
    /// The first `len` bytes of `file` in a pipe; fails where the kernel
    /// lacks a call or the pipes cannot be made big enough for `len` (the
    /// per-user pipe limit), so the caller falls back to `sendfile`.
    pub fn new(file: &OwnedFd, len: usize) -> io::Result<BlockPipe> {
        let source = pipe_of(len)?;
        let work = pipe_of(len)?;
        let mut offset: libc::loff_t = 0;
        let mut filled = 0;
        while filled < len {
            // SAFETY: valid descriptors and a local offset the kernel
            // advances.
            let n = check(unsafe {
                libc::splice(
                    file.as_raw_fd(),
                    &mut offset,
                    source.1.as_raw_fd(),
                    std::ptr::null_mut(),
                    len - filled,
                    libc::SPLICE_F_NONBLOCK,
                )
            })?;
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            filled += n;
        }
        Ok(BlockPipe {
            _file: file.try_clone()?,
            source,
            work,
            len,
            queued: 0,
        })
    }

    /// Puts up to the rest of the current block onto `sock`: duplicates
    /// the block when the last one is all sent, then splices what is
    /// queued. Blocks as a socket write does; returns the bytes sent.
    pub fn send(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        if self.queued == 0 {
            // SAFETY: two valid pipe descriptors.
            self.queued = check(unsafe {
                libc::tee(
                    self.source.0.as_raw_fd(),
                    self.work.1.as_raw_fd(),
                    self.len,
                    0,
                )
            })?;
        }
        // SAFETY: a valid pipe and socket; no offsets.
        let n = check(unsafe {
            libc::splice(
                self.work.0.as_raw_fd(),
                std::ptr::null_mut(),
                sock.as_raw_fd(),
                std::ptr::null_mut(),
                self.queued,
                libc::SPLICE_F_MORE,
            )
        })?;
        self.queued -= n;
        Ok(n)
    }
}

/// A pipe (read end, write end) able to hold `len` bytes of whole pages.
fn pipe_of(len: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors nothing else owns.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let size = libc::c_int::try_from(len.max(1))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid pipe descriptor; the size is only a request.
    let got = unsafe { libc::fcntl(ends.1.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ends)
}

fn check(rc: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn each_send_is_the_block_again() {
        let block: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let file = crate::sys::memfd_with(&block, 1).unwrap();
        let mut pipe = BlockPipe::new(&file, block.len()).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; 30_000];
            client.read_exact(&mut got).unwrap();
            got
        });
        let mut sent = 0;
        while sent < 30_000 {
            sent += pipe.send(&server).unwrap();
        }
        assert_eq!(sent, 30_000, "whole blocks");
        for copy in reader.join().unwrap().chunks(block.len()) {
            assert_eq!(copy, &block[..]);
        }
    }

    #[test]
    fn a_file_the_kernel_cannot_splice_is_refused() {
        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        let err = BlockPipe::new(&OwnedFd::from(dir), 4096).unwrap_err();
        assert!(crate::sys::unsupported(&err), "{err}");
    }
}
