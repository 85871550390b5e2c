//! ndt7 download payload sent with `sendfile`, as `-R` tests send when the
//! start-up calibration finds it cheaper than copying: the payload is held
//! once in an in-memory file, and each binary message's payload goes from
//! it to the socket without passing through user space (the kernel takes
//! page references). Only for plain connections: TLS must encrypt in user
//! space.
//!
//! The frame header still goes through the upgraded connection's writer
//! (and is wholly written first), so frames stay in order; the payload is
//! then written to the same socket through a duplicate descriptor, waited
//! on with the runtime. A write that makes no progress within the write
//! deadline fails, as every write on a dashboard connection does.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::sys;

/// The in-memory file holding `payload` (made once; `None` if the kernel
/// will not make one). Later calls get the first call's file.
pub fn payload_file(payload: &[u8]) -> Option<Arc<OwnedFd>> {
    static FILE: OnceLock<Option<Arc<OwnedFd>>> = OnceLock::new();
    FILE.get_or_init(|| match sys::memfd_with(payload, 1) {
        Ok(fd) => Some(Arc::new(fd)),
        Err(e) => {
            tracing::debug!(error = %e, "ndt7: no in-memory file; copying");
            None
        }
    })
    .clone()
}

/// A socket that binary payloads go to with `sendfile`.
pub struct Sender {
    sock: AsyncFd<Arc<OwnedFd>>,
    file: Arc<OwnedFd>,
    stall: Duration,
}

/// What became of a payload sent with [`Sender::send`].
pub enum Sent {
    /// All of it went.
    All,
    /// The kernel refused `sendfile` after this many bytes: the rest must
    /// be written.
    Refused(usize),
}

impl Sender {
    /// Sends to `socket` (a duplicate of the connection's descriptor, in
    /// non-blocking mode) from `file`; `None` if the runtime cannot wait
    /// on it. A wait longer than `stall` fails.
    pub fn new(socket: Arc<OwnedFd>, file: Arc<OwnedFd>, stall: Duration) -> Option<Sender> {
        // SAFETY: the descriptor is owned by the `OwnedFd` the `AsyncFd`
        // holds a reference to, so it stays open, and the same, as long
        // as the `AsyncFd` lives.
        match unsafe { AsyncFd::register_with_interest(socket, Interest::WRITABLE) } {
            Ok(sock) => Some(Sender { sock, file, stall }),
            Err(e) => {
                tracing::debug!(error = %e.into_parts().1, "ndt7: cannot wait on the socket; copying");
                None
            }
        }
    }

    /// The file's first `len` bytes onto the socket.
    pub async fn send(&self, len: usize) -> io::Result<Sent> {
        let mut offset: i64 = 0;
        while (offset as usize) < len {
            let mut ready = tokio::time::timeout(self.stall, self.sock.writable())
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client took nothing within the write deadline",
                    )
                })??;
            let done = offset as usize;
            let result = ready.try_io(|sock| {
                sys::sendfile(&**sock.get_ref(), &*self.file, &mut offset, len - done)
            });
            match result {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) if sys::unsupported(&e) => return Ok(Sent::Refused(done)),
                Ok(Err(e)) => return Err(e),
                // Not writable after all: wait again.
                Err(_would_block) => {}
            }
        }
        Ok(Sent::All)
    }
}
