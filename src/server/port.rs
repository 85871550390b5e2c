//! One iperf3 port: the accept loop and the routing of new connections.
//!
//! Stock iperf3 decides what a connection is by its own state; we route by
//! cookie instead. A connection arriving while some test on this port waits
//! for its data streams has its 37-byte cookie read: a matching cookie makes
//! it that test's stream; anything else is refused (`0xFF`) unless the port
//! has room for another test. When no test waits for streams, a connection is
//! a new test's control connection if there is room, and is otherwise told
//! "busy" (`0xFF`) at once, without reading from it.
//!
//! Nothing here queues without bound: every accepted connection takes one of
//! [`MAX_CONNECTIONS`] permits per port (a test's control connection, or a
//! connection whose cookie is being read) or is refused on the spot, cookies
//! are read concurrently under a deadline, and refusals need no task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::auth::Authenticator;
use super::listen::{self, ListenOpts};
use super::overlap::Overlaps;
use crate::health::HealthProbe;
use crate::hub::Hub;
use crate::locks::lock;
use crate::protocol::policy::Policy;
use crate::protocol::session::Limits;
use crate::protocol::wire::{Cookie, State, COOKIE_LEN};
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
    table: Mutex<Table>,
    permits: Arc<Semaphore>,
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

impl PortCtx {
    fn try_slot(self: &Arc<Self>) -> Option<TestSlot> {
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

    fn awaiting_streams(&self) -> bool {
        !lock(&self.table).awaiting.is_empty()
    }

    fn stream_route(&self, cookie: &Cookie) -> Option<mpsc::Sender<(TcpStream, SocketAddr)>> {
        lock(&self.table).awaiting.get(cookie).cloned()
    }
}

/// Refuses a connection the way stock does: one `0xFF` byte, then close.
/// Needs no task: the byte fits any fresh socket's send buffer.
pub fn refuse(conn: TcpStream) {
    // A failed write is ignored: the running test must not notice.
    let _ = conn.try_write(&[State::AccessDenied.byte()]);
    let _ = socket2::SockRef::from(&conn).shutdown(std::net::Shutdown::Write);
}

/// A connection whose cookie was read, waiting to be routed.
struct Classified {
    conn: TcpStream,
    peer: SocketAddr,
    cookie: Cookie,
    permit: OwnedSemaphorePermit,
}

/// Runs one port until shutdown: accepts, routes, and spawns tests.
pub async fn run(
    listener: std::net::TcpListener,
    hub: Arc<Hub>,
    settings: PortSettings,
    shutdown: Shutdown,
    tasks: TaskTracker,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let default_buffers = listen::buffer_sizes(&listener);
    let mut listener = TcpListener::from_std(listener)?;
    let (reconf_tx, mut reconf_rx) = mpsc::channel::<Reconfigure>(4);
    // Cookies are read concurrently, but connections are routed in accept
    // order: stream roles (and ids) follow the order of arrival. Each entry
    // is the answer-to-be of one cookie read.
    let (order_tx, mut order_rx) =
        mpsc::channel::<oneshot::Receiver<Option<Classified>>>(MAX_CONNECTIONS);
    let ctx = Arc::new(PortCtx {
        port: addr.port(),
        addr,
        settings,
        hub,
        shutdown: shutdown.clone(),
        reconfigure: reconf_tx,
        default_buffers,
        udp_setup: Arc::default(),
        table: Mutex::default(),
        permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
    });
    let router = {
        let (ctx, tasks) = (Arc::clone(&ctx), tasks.clone());
        let shutdown = shutdown.clone();
        async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.triggered() => return,
                    next = order_rx.recv() => next,
                };
                let Some(answer) = next else { return };
                // A read ends within its deadline, so the head of the line
                // holds the others back for a bounded time only.
                let classified = tokio::select! {
                    _ = shutdown.triggered() => return,
                    c = answer => c,
                };
                if let Ok(Some(c)) = classified {
                    route(c, &ctx, &tasks);
                }
            }
        }
    };
    tasks.spawn(router);
    let mut accept_errors = 0u64;
    let idle = ctx.settings.idle_timeout;
    let mut idle_since = tokio::time::Instant::now();
    loop {
        let idle_at = idle.map(|d| idle_since + d);
        tokio::select! {
            _ = shutdown.triggered() => return Ok(()),
            _ = async { tokio::time::sleep_until(idle_at.expect("guarded")).await }, if idle_at.is_some() => {
                // Stock re-creates an idle server's listener, in case it got
                // into a bad state; do the same when no test is running.
                idle_since = tokio::time::Instant::now();
                if lock(&ctx.table).active == 0 {
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
                        // instead of spinning; the listener stays. Said once
                        // per burst, not once per attempt.
                        if accept_errors == 0 {
                            eprintln!("webperf3: port {}: accept failed: {e}", ctx.port);
                        }
                        accept_errors += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                accept_errors = 0;
                let Ok(permit) = Arc::clone(&ctx.permits).try_acquire_owned() else {
                    refuse(conn);
                    continue;
                };
                if ctx.awaiting_streams() {
                    let (tx, rx) = oneshot::channel();
                    if order_tx.try_send(rx).is_err() {
                        refuse(conn);
                        continue;
                    }
                    let limit = ctx.settings.limits.read_start;
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move {
                        let cookie = tokio::select! {
                            _ = shutdown.triggered() => None,
                            c = read_stream_cookie(conn, limit) => c,
                        };
                        let _ = tx.send(cookie.map(|(cookie, conn)| Classified { conn, peer, cookie, permit }));
                    });
                } else if let Some(slot) = ctx.try_slot() {
                    let ctx = Arc::clone(&ctx);
                    tasks.spawn(super::control::run_test(conn, peer, None, slot, permit, ctx));
                } else {
                    refuse(conn);
                }
            }
        }
    }
}

/// Reads the 37-byte cookie of a connection that arrived while a test
/// waits for its streams. A stock client sends it in one write right after
/// connecting, so the whole cookie must arrive within `limit` (the read-start
/// limit): a silent connection cannot hold later streams back for longer.
async fn read_stream_cookie(mut conn: TcpStream, limit: Duration) -> Option<(Cookie, TcpStream)> {
    let mut raw = [0u8; COOKIE_LEN];
    match tokio::time::timeout(limit, conn.read_exact(&mut raw)).await {
        Ok(Ok(_)) => Some((Cookie(raw), conn)),
        _ => None,
    }
}

/// Routes a connection whose cookie was read: to the test that waits for
/// streams with this cookie, else to a new test if the port has room, else
/// away with `0xFF`.
fn route(c: Classified, ctx: &Arc<PortCtx>, tasks: &TaskTracker) {
    let Classified {
        conn,
        peer,
        cookie,
        permit,
    } = c;
    if let Some(tx) = ctx.stream_route(&cookie) {
        // The test takes exactly as many streams as it asked for; one more
        // with its cookie (or one arriving as it ends) is refused.
        if let Err(e) = tx.try_send((conn, peer)) {
            let (conn, _) = e.into_inner();
            refuse(conn);
        }
        return;
    }
    match ctx.try_slot() {
        Some(slot) => {
            let fut =
                super::control::run_test(conn, peer, Some(cookie), slot, permit, Arc::clone(ctx));
            tasks.spawn(fut);
        }
        None => refuse(conn),
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
