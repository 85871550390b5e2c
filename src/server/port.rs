//! One iperf3 port: the accept loop and the routing of new connections.
//!
//! Stock iperf3 decides what a connection is by its own state; we route by
//! cookie instead. A connection arriving while some test on this port waits
//! for its data streams has its 37-byte cookie read: a matching cookie makes
//! it that test's stream; anything else is refused (`0xFF`) unless the port
//! has room for another test. When no test waits for streams, a connection is
//! a new test's control connection if there is room, and is otherwise told
//! "busy" (`0xFF`) at once, without reading from it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::Authenticator;
use super::listen::{self, ListenOpts};
use super::overlap::Overlaps;
use crate::health::HealthProbe;
use crate::hub::Hub;
use crate::protocol::policy::Policy;
use crate::protocol::session::Limits;
use crate::protocol::wire::{Cookie, State, COOKIE_LEN};

/// How long a new connection may take to send its cookie while a test waits
/// for streams.
const STREAM_COOKIE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections waiting to have their cookie read; more are refused.
const CLASSIFY_QUEUE: usize = 256;

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
    /// Fires on shutdown.
    pub shutdown: CancellationToken,
    /// Why the server shuts down (the log's `error` for running tests).
    pub shutdown_reason: Arc<OnceLock<&'static str>>,
    /// Requests to re-create the listener.
    pub reconfigure: mpsc::Sender<Reconfigure>,
    /// `SO_SNDBUF`/`SO_RCVBUF` of the listener without per-test options.
    pub default_buffers: (u32, u32),
    /// Held by the test whose UDP streams are being set up: hellos carry no
    /// cookie, so only one test at a time may be waiting for them.
    pub udp_setup: Arc<tokio::sync::Mutex<()>>,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    active: usize,
    awaiting: HashMap<Cookie, mpsc::Sender<(TcpStream, SocketAddr)>>,
}

/// Keeps a test counted on its port until released or dropped.
pub struct TestSlot {
    ctx: Arc<PortCtx>,
    cookie: Option<Cookie>,
    released: bool,
}

impl TestSlot {
    /// Routes TCP connections carrying `cookie` to `tx` until
    /// [`TestSlot::stop_streams`].
    pub fn await_streams(&mut self, cookie: Cookie, tx: mpsc::Sender<(TcpStream, SocketAddr)>) {
        self.ctx
            .table
            .lock()
            .expect("table lock")
            .awaiting
            .insert(cookie, tx);
        self.cookie = Some(cookie);
    }

    /// Stops routing streams to this test: later connections are refused.
    pub fn stop_streams(&mut self) {
        if let Some(c) = self.cookie.take() {
            self.ctx
                .table
                .lock()
                .expect("table lock")
                .awaiting
                .remove(&c);
        }
    }

    /// Frees the port for the next test: this one's outcome is decided and
    /// only its bookkeeping (the log entry) remains.
    pub fn release(&mut self) {
        self.stop_streams();
        if !std::mem::replace(&mut self.released, true) {
            let mut t = self.ctx.table.lock().expect("table lock");
            t.active = t.active.saturating_sub(1);
        }
    }
}

impl Drop for TestSlot {
    fn drop(&mut self) {
        self.release();
    }
}

impl PortCtx {
    fn try_slot(self: &Arc<Self>) -> Option<TestSlot> {
        let mut t = self.table.lock().expect("table lock");
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

    fn awaiting_streams(&self) -> bool {
        !self.table.lock().expect("table lock").awaiting.is_empty()
    }

    fn stream_route(&self, cookie: &Cookie) -> Option<mpsc::Sender<(TcpStream, SocketAddr)>> {
        self.table
            .lock()
            .expect("table lock")
            .awaiting
            .get(cookie)
            .cloned()
    }
}

/// Refuses a connection the way stock does: one `0xFF` byte, then close.
async fn refuse(mut conn: TcpStream) {
    // A failed write is ignored: the running test must not notice.
    let _ = conn.try_write(&[State::AccessDenied.byte()]);
    let _ = conn.shutdown().await;
}

/// Runs one port until shutdown: accepts, routes, and spawns tests.
pub async fn run(
    listener: std::net::TcpListener,
    hub: Arc<Hub>,
    settings: PortSettings,
    shutdown: CancellationToken,
    shutdown_reason: Arc<OnceLock<&'static str>>,
    tasks: TaskTracker,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let default_buffers = listen::buffer_sizes(&listener);
    let mut listener = TcpListener::from_std(listener)?;
    let (reconf_tx, mut reconf_rx) = mpsc::channel::<Reconfigure>(4);
    // Connections that may be data streams are classified one at a time, in
    // accept order: stream roles (and ids) follow the order of arrival.
    let (classify_tx, mut classify_rx) = mpsc::channel::<(TcpStream, SocketAddr)>(CLASSIFY_QUEUE);
    let ctx = Arc::new(PortCtx {
        port: addr.port(),
        addr,
        settings,
        hub,
        shutdown: shutdown.clone(),
        shutdown_reason,
        reconfigure: reconf_tx,
        default_buffers,
        udp_setup: Arc::default(),
        table: Mutex::default(),
    });
    let classifier = {
        let (ctx, tasks) = (Arc::clone(&ctx), tasks.clone());
        let shutdown = shutdown.clone();
        async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = classify_rx.recv() => next,
                };
                let Some((conn, peer)) = next else { return };
                classify(conn, peer, Arc::clone(&ctx), tasks.clone()).await;
            }
        }
    };
    tasks.spawn(classifier);
    let idle = ctx.settings.idle_timeout;
    let mut idle_since = tokio::time::Instant::now();
    loop {
        let idle_at = idle.map(|d| idle_since + d);
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = async { tokio::time::sleep_until(idle_at.expect("guarded")).await }, if idle_at.is_some() => {
                // Stock re-creates an idle server's listener, in case it got
                // into a bad state; do the same when no test is running.
                idle_since = tokio::time::Instant::now();
                if ctx.table.lock().expect("table lock").active == 0 {
                    if let Err(e) = rebind(&mut listener, addr, ListenOpts::default()).await {
                        eprintln!("webperf3: port {}: could not re-create the idle listener: {e}", ctx.port);
                    }
                }
            }
            Some(req) = reconf_rx.recv() => {
                let result = rebind(&mut listener, addr, req.opts).await;
                let _ = req.reply.send(result);
            }
            accepted = listener.accept() => {
                idle_since = tokio::time::Instant::now();
                let (conn, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of descriptors and the like: back off briefly
                        // instead of spinning; the listener stays.
                        eprintln!("webperf3: port {}: accept failed: {e}", ctx.port);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let ctx = Arc::clone(&ctx);
                if ctx.awaiting_streams() {
                    if let Err(mpsc::error::TrySendError::Full((conn, _))) = classify_tx.try_send((conn, peer)) {
                        tasks.spawn(refuse(conn));
                    }
                } else if let Some(slot) = ctx.try_slot() {
                    tasks.spawn(super::control::run_test(conn, peer, None, slot, ctx));
                } else {
                    tasks.spawn(refuse(conn));
                }
            }
        }
    }
}

/// Reads the cookie of a connection that arrived while a test waits for its
/// streams, and routes it.
async fn classify(mut conn: TcpStream, peer: SocketAddr, ctx: Arc<PortCtx>, tasks: TaskTracker) {
    let mut raw = [0u8; COOKIE_LEN];
    let read = tokio::time::timeout(STREAM_COOKIE_TIMEOUT, conn.read_exact(&mut raw)).await;
    if !matches!(read, Ok(Ok(_))) {
        return;
    }
    let cookie = Cookie(raw);
    if let Some(tx) = ctx.stream_route(&cookie) {
        if let Err(mpsc::error::SendError((conn, _))) = tx.send((conn, peer)).await {
            refuse(conn).await;
        }
        return;
    }
    match ctx.try_slot() {
        Some(slot) => {
            let fut = super::control::run_test(conn, peer, Some(cookie), slot, Arc::clone(&ctx));
            tasks.spawn(fut);
        }
        None => refuse(conn).await,
    }
}

/// Re-creates the listener with `opts` (stock does the same: options such as
/// the window must be on the listening socket before the handshake).
async fn rebind(
    listener: &mut TcpListener,
    addr: SocketAddr,
    opts: ListenOpts,
) -> std::io::Result<(u32, u32)> {
    // The old socket must be closed before the new one can bind the port.
    let placeholder = TcpListener::bind((addr.ip(), 0)).await?;
    drop(std::mem::replace(listener, placeholder));
    let mut last_err = None;
    for _ in 0..50 {
        match listen::tcp_listener(addr, opts) {
            Ok(l) => {
                let sizes = listen::buffer_sizes(&l);
                *listener = TcpListener::from_std(l)?;
                return Ok(sizes);
            }
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("rebind failed")))
}
