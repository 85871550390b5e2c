//! What one port's tests share with its accept loop: the settings, the
//! port context with its cookie-keyed routing table, the test slots that
//! count running tests, and the stock way to refuse a connection. Both the
//! accept loop ([`super::port`]) and the test driver ([`super::driver`]) build
//! on this; it knows neither.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::auth::Authenticator;
use super::listen::ListenOpts;
use super::overlap::Overlaps;
use crate::health::HealthProbe;
use crate::hub::Hub;
use crate::locks::lock;
use crate::protocol::policy::Policy;
use crate::protocol::session::Limits;
use crate::protocol::wire::{Cookie, State};
use crate::shutdown::Shutdown;

/// Connections one port holds at once: its tests' control connections and
/// the connections whose cookie is being read or waits to be routed. More
/// are refused at once. A `-P 128 --bidir` test opens 256 streams in a row,
/// so this leaves room for that and for a flood beside it.
pub const MAX_CONNECTIONS: usize = 512;

/// Settings shared by every port.
#[derive(Debug, Clone)]
pub struct PortSettings {
    /// Protocol timing limits.
    pub limits: Limits,
    /// Tests that may run at once on one port (stock: 1).
    pub max_tests: usize,
    /// What tests may do.
    pub policy: Policy,
    /// Tests moving data right now, box-wide.
    pub overlaps: Arc<Overlaps>,
    /// Re-create an idle port's listener after this long without a
    /// connection (stock's `--idle-timeout`).
    pub idle_timeout: Option<Duration>,
    /// Where the machine's temperature and throttling are read.
    pub health: HealthProbe,
    /// When set, every test must carry a valid `authtoken`.
    pub auth: Option<Arc<Authenticator>>,
    /// `--copy`: data streams copy as stock's do, unless a client asks not to.
    pub copy: bool,
}

impl Default for PortSettings {
    fn default() -> Self {
        PortSettings {
            limits: Limits::default(),
            max_tests: 1,
            policy: Policy::default(),
            overlaps: Arc::default(),
            idle_timeout: None,
            health: HealthProbe::default(),
            auth: None,
            copy: false,
        }
    }
}

/// Asks the accept loop to re-create its listener with other options.
pub struct Reconfigure {
    /// The new options.
    pub opts: ListenOpts,
    /// The listener's buffer sizes after the change, or the failure.
    pub reply: oneshot::Sender<std::io::Result<(u32, u32)>>,
}

/// Where a test's data connections (with their cookie read) are sent.
pub type StreamSender = mpsc::Sender<(TcpStream, SocketAddr)>;

/// What one port's tests share: the routing table and the way to ask for a
/// reconfigured listener.
pub struct PortCtx {
    /// The port number.
    pub port: u16,
    /// The address the listener is bound to.
    pub addr: SocketAddr,
    /// Settings.
    pub settings: PortSettings,
    /// Where results and live status go.
    pub hub: Arc<Hub>,
    /// Fires on shutdown, with the reason running tests log.
    pub shutdown: Shutdown,
    /// Requests to re-create the listener.
    pub reconfigure: mpsc::Sender<Reconfigure>,
    /// `SO_SNDBUF`/`SO_RCVBUF` of the listener without per-test options.
    pub default_buffers: (u32, u32),
    /// Held by the test whose UDP streams are being set up: hellos carry no
    /// cookie, so only one test at a time may be waiting for them.
    pub udp_setup: Arc<tokio::sync::Mutex<()>>,
    /// Running tests and the tests waiting for their streams.
    table: Mutex<Table>,
    /// One per connection held ([`MAX_CONNECTIONS`]).
    permits: Arc<Semaphore>,
}

/// The routing table of one port.
#[derive(Default)]
struct Table {
    /// Tests holding a slot.
    active: usize,
    /// Tests waiting for data streams, by cookie.
    awaiting: HashMap<Cookie, StreamSender>,
}

impl PortCtx {
    /// The context of a port bound to `addr`.
    pub fn new(
        addr: SocketAddr,
        settings: PortSettings,
        hub: Arc<Hub>,
        shutdown: Shutdown,
        reconfigure: mpsc::Sender<Reconfigure>,
        default_buffers: (u32, u32),
    ) -> PortCtx {
        PortCtx {
            port: addr.port(),
            addr,
            settings,
            hub,
            shutdown,
            reconfigure,
            default_buffers,
            udp_setup: Arc::default(),
            table: Mutex::default(),
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// One of the port's connection permits, if any is left.
    pub fn try_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }

    /// A slot for one more test, if the port has room.
    pub fn try_slot(self: &Arc<Self>) -> Option<TestSlot> {
        let mut t = lock(&self.table);
        if t.active >= self.settings.max_tests {
            return None;
        }
        t.active += 1;
        Some(TestSlot {
            ctx: Arc::clone(self),
            cookie: None,
            released: false,
        })
    }

    /// Whether no test holds a slot.
    pub fn is_idle(&self) -> bool {
        lock(&self.table).active == 0
    }

    /// Whether some test waits for data streams.
    pub fn awaiting_streams(&self) -> bool {
        !lock(&self.table).awaiting.is_empty()
    }

    /// Where a connection carrying `cookie` goes, if a test awaits it.
    pub fn stream_route(&self, cookie: &Cookie) -> Option<StreamSender> {
        lock(&self.table).awaiting.get(cookie).cloned()
    }
}

/// Keeps a test counted on its port until released or dropped.
pub struct TestSlot {
    /// The port.
    ctx: Arc<PortCtx>,
    /// The cookie streams are routed by, while they are.
    cookie: Option<Cookie>,
    /// The port's count no longer includes this test.
    released: bool,
}

impl TestSlot {
    /// Routes TCP connections carrying `cookie` to `tx` until
    /// [`TestSlot::stop_streams`].
    pub fn await_streams(&mut self, cookie: Cookie, tx: StreamSender) {
        lock(&self.ctx.table).awaiting.insert(cookie, tx);
        self.cookie = Some(cookie);
    }

    /// Stops routing streams to this test: later connections are refused.
    pub fn stop_streams(&mut self) {
        if let Some(c) = self.cookie.take() {
            lock(&self.ctx.table).awaiting.remove(&c);
        }
    }

    /// Frees the port for the next test: this one's outcome is decided and
    /// only its bookkeeping (the log entry) remains.
    pub fn release(&mut self) {
        self.stop_streams();
        if !std::mem::replace(&mut self.released, true) {
            let mut t = lock(&self.ctx.table);
            t.active = t.active.saturating_sub(1);
        }
    }
}

impl Drop for TestSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Refuses a connection the way stock does: one `0xFF` byte, then close.
/// Needs no task: the byte fits any fresh socket's send buffer.
pub fn refuse(conn: TcpStream) {
    // A failed write is ignored: the running test must not notice.
    let _ = conn.try_write(&[State::AccessDenied.byte()]);
    let _ = socket2::SockRef::from(&conn).shutdown(std::net::Shutdown::Write);
}
