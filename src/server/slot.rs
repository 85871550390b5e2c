//! What one port's tests share with its accept loop: the settings, the
//! port context with its cookie-keyed routing table, the test slots that
//! count running tests, and the stock way to refuse a connection. Both the
//! accept loop ([`super::port`]) and the test driver ([`super::driver`]) build
//! on this; it knows neither.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::auth::Authenticator;
use super::calibrate::SendPath;
use super::listen::ListenOpts;
use super::overlap::Overlaps;
use crate::health::HealthProbe;
use crate::hub::Hub;
use crate::locks::lock;
use crate::protocol::admission::{Admission, Refusal};
use crate::protocol::errors::ErrorCode;
use crate::protocol::policy::Policy;
use crate::protocol::session::Limits;
use crate::protocol::wire::{Cookie, State};
use crate::shutdown::Shutdown;

/// Connections one port holds at once: its tests' control connections and
/// the connections whose cookie is being read or waits to be routed. More
/// are refused at once. A `-P 128 --bidir` test opens 256 streams in a row,
/// so this leaves room for that and for a flood beside it.
pub const MAX_CONNECTIONS: usize = 512;

/// Of [`MAX_CONNECTIONS`], those only the clients of tests waiting for
/// their streams may take: a flood from other addresses leaves them a
/// `-P 128 --bidir` test's worth.
pub const RESERVED_FOR_STREAMS: usize = 256;

/// Connections one source address may have waiting for their cookie to be
/// read, unless a test waits for streams from it: more are refused at once.
pub const MAX_PENDING_PER_SOURCE: usize = 32;

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
    /// `--send-method` and the calibration's state.
    pub send: Arc<SendPath>,
    /// Tests per source and refusals, shared by every port.
    pub admission: Arc<Mutex<Admission>>,
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
            send: Arc::default(),
            admission: Arc::default(),
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
    /// Connections per source whose cookie is being read.
    pending: Mutex<HashMap<IpAddr, usize>>,
}

/// The routing table of one port.
#[derive(Default)]
struct Table {
    /// Tests holding a slot.
    active: usize,
    /// Tests waiting for data streams, by cookie, with their client's
    /// address.
    awaiting: HashMap<Cookie, (StreamSender, IpAddr)>,
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
            pending: Mutex::default(),
        }
    }

    /// One of the port's connection permits, if any is left. A source no
    /// test waits for streams from gets none of the last
    /// [`RESERVED_FOR_STREAMS`].
    pub fn try_permit(&self, source: IpAddr) -> Option<OwnedSemaphorePermit> {
        if self.permits.available_permits() <= RESERVED_FOR_STREAMS
            && !self.expects_streams_from(source)
        {
            return None;
        }
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }

    /// Counts one more connection of `source` whose cookie is read, unless
    /// it has [`MAX_PENDING_PER_SOURCE`] already (and no test waits for
    /// streams from it); the count drops with the guard.
    pub fn try_pending(self: &Arc<Self>, source: IpAddr) -> Option<PendingRead> {
        let expected = self.expects_streams_from(source);
        let mut pending = lock(&self.pending);
        let n = pending.entry(source).or_insert(0);
        if *n >= MAX_PENDING_PER_SOURCE && !expected {
            return None;
        }
        *n += 1;
        Some(PendingRead {
            ctx: Arc::clone(self),
            source,
        })
    }

    /// A slot for one more test, if the port has room.
    pub fn try_slot(self: &Arc<Self>) -> Option<TestSlot> {
        let mut slot = self.uncounted_slot();
        slot.claim().then_some(slot)
    }

    /// A slot that does not count yet: its test must [`TestSlot::claim`]
    /// it (once its client authenticated) before it moves data.
    pub fn uncounted_slot(self: &Arc<Self>) -> TestSlot {
        TestSlot {
            ctx: Arc::clone(self),
            cookie: None,
            counted: false,
        }
    }

    /// Whether `source` passes `--allow` and the rate of tests per source;
    /// the rate counts this test when it does.
    pub fn admit(&self, source: IpAddr) -> Result<(), Refusal> {
        let policy = &self.settings.policy;
        if !policy.allow.allows(source) {
            return Err(Refusal::NotAllowed);
        }
        let per_minute = policy.tests_per_minute;
        if !lock(&self.settings.admission).try_start(Instant::now(), source, per_minute) {
            return Err(Refusal::TooManyTests);
        }
        Ok(())
    }

    /// Notes a refusal: the first of a source in a minute goes to stderr
    /// (with `detail`, escaped), the others are counted for
    /// [`PortCtx::report_refusals`].
    pub fn refused(&self, source: IpAddr, why: Refusal, detail: Option<&str>) {
        let source = source.to_canonical();
        if lock(&self.settings.admission).refused(Instant::now(), source, why) {
            match detail {
                Some(d) => tracing::warn!(client = %source, why = %d, "{}", why.text()),
                None => tracing::warn!(client = %source, "{}", why.text()),
            }
        }
    }

    /// Writes the summary lines of refusals that are due.
    pub fn report_refusals(&self) {
        let due = lock(&self.settings.admission).summaries(Instant::now());
        for s in due {
            let source = s.source.map_or("others".to_string(), |ip| ip.to_string());
            tracing::warn!(
                client = %source,
                refused = s.count,
                last = s.last.text(),
                "refusals in the last minute"
            );
        }
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
        lock(&self.table)
            .awaiting
            .get(cookie)
            .map(|(tx, _)| tx.clone())
    }

    /// Whether some test waits for data streams from `source`.
    pub fn expects_streams_from(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        lock(&self.table)
            .awaiting
            .values()
            .any(|(_, ip)| *ip == source)
    }
}

/// A connection counted among its source's pending cookie reads.
pub struct PendingRead {
    ctx: Arc<PortCtx>,
    source: IpAddr,
}

impl Drop for PendingRead {
    fn drop(&mut self) {
        let mut pending = lock(&self.ctx.pending);
        if let Some(n) = pending.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&self.source);
            }
        }
    }
}

/// Keeps a test counted on its port until released or dropped.
pub struct TestSlot {
    /// The port.
    ctx: Arc<PortCtx>,
    /// The cookie streams are routed by, while they are.
    cookie: Option<Cookie>,
    /// The port's count includes this test.
    counted: bool,
}

impl TestSlot {
    /// Counts the test on its port if there is room (or it already is);
    /// whether it is counted.
    pub fn claim(&mut self) -> bool {
        if !self.counted {
            let mut t = lock(&self.ctx.table);
            if t.active < self.ctx.settings.max_tests {
                t.active += 1;
                self.counted = true;
            }
        }
        self.counted
    }

    /// Routes TCP connections carrying `cookie` from `client` to `tx`
    /// until [`TestSlot::stop_streams`].
    pub fn await_streams(&mut self, cookie: Cookie, client: IpAddr, tx: StreamSender) {
        let client = client.to_canonical();
        lock(&self.ctx.table).awaiting.insert(cookie, (tx, client));
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
        if std::mem::take(&mut self.counted) {
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
    refuse_with(conn, &[State::AccessDenied.byte()]);
}

/// Refuses a connection with `SERVER_ERROR` and `code`, at once, without
/// reading anything from it.
pub fn refuse_with_error(conn: TcpStream, code: ErrorCode) {
    refuse_with(conn, &crate::protocol::wire::server_error(code.0, 0));
}

fn refuse_with(conn: TcpStream, bytes: &[u8]) {
    // A failed write is ignored: the running test must not notice.
    let _ = conn.try_write(bytes);
    let _ = socket2::SockRef::from(&conn).shutdown(std::net::Shutdown::Write);
}
