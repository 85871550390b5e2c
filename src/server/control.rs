//! The control connection driver: pumps bytes and timers into a
//! [`Session`] and carries out the actions it hands back. All protocol
//! decisions live in the session; this file only does I/O.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::auth::Authenticator;
use super::listen::ListenOpts;
use super::overlap::Running;
use super::port::{PortCtx, Reconfigure, TestSlot};
use super::streams::{data_path_json, DataStream};
use super::udp;
use crate::health;
use crate::protocol::errors::{self, ErrorCode};
use crate::protocol::params::{Protocol, TestParams};
use crate::protocol::policy::RateWindow;
use crate::protocol::results::stream_id;
use crate::protocol::session::{Action, Event, Expect, Phase, Session};
use crate::protocol::wire::{self, Cookie, COOKIE_LEN, MAX_PARAMS_LEN, MAX_RESULTS_LEN};
use crate::report::json::{self, Json};
use crate::report::log::{TestLog, INTERVAL_SECS};
use crate::report::stats::{results_document, Stats};

/// The earliest a refused client hears `SERVER_ERROR` 142, counted from
/// the start of the check.
const AUTH_REFUSAL_DELAY: Duration = Duration::from_millis(250);
/// TCP keepalive on the control connection: a client host that vanished
/// (powered off, cable pulled) is noticed within about two minutes in any
/// phase, even while its data streams are silent too.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Interval between keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the connection counts as dead.
const KEEPALIVE_RETRIES: u32 = 6;

/// Runs one test from its accepted control connection to its log entry.
/// `cookie` is given when the port already read it; `permit` is the port's
/// count of this connection, held until it is closed.
pub async fn run_test(
    conn: TcpStream,
    peer: SocketAddr,
    cookie: Option<Cookie>,
    slot: TestSlot,
    permit: OwnedSemaphorePermit,
    ctx: Arc<PortCtx>,
) {
    let _ = conn.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    let _ = socket2::SockRef::from(&conn).set_tcp_keepalive(&keepalive);
    let (rd, wr) = conn.into_split();
    let now = Instant::now();
    let session = Session::new(now, ctx.settings.limits).with_policy(ctx.settings.policy.clone());
    let refused = (!ctx.settings.policy.allow.allows(peer.ip())).then(|| {
        format!(
            "client {} is not in the allowed networks",
            peer.ip().to_canonical()
        )
    });
    let test = Test {
        session,
        refused,
        udp_guard: None,
        running: None,
        overlapped: None,
        rate_window: RateWindow::default(),
        health: health::Record::default(),
        ctx,
        slot,
        _permit: permit,
        reader: ControlReader {
            rd,
            buf: Vec::with_capacity(512),
            eof: false,
        },
        writer: wr,
        peer,
        accepted_at: SystemTime::now(),
        log: TestLog::new(),
        streams: Vec::new(),
        stream_rx: None,
        udp_rx: None,
        udp_accept: None,
        stats: None,
        t0: None,
        cpu_start: None,
        cpu: (0.0, 0.0, 0.0),
        congestion: None,
        client_results: None,
        listener_changed: false,
        next_tick: None,
        last_tick_at: None,
        streams_stopped: false,
        last_rx_bytes: 0,
        last_tx_bytes: 0,
        stream_broke: false,
        announced: false,
        user: None,
    };
    test.run(cookie).await;
}

struct Test {
    ctx: Arc<PortCtx>,
    /// Why the client was refused before anything else (`--allow`).
    refused: Option<String>,
    /// Held while this test's UDP streams are set up.
    udp_guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// This test's registration among the tests moving data.
    running: Option<Running>,
    /// Whether another test moved data during this one's data phase.
    overlapped: Option<bool>,
    /// Recent interval totals, against `--server-bitrate-limit`.
    rate_window: RateWindow,
    /// Temperature and throttling seen during the test.
    health: health::Record,
    slot: TestSlot,
    _permit: OwnedSemaphorePermit,
    session: Session,
    reader: ControlReader,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    accepted_at: SystemTime,
    log: TestLog,
    streams: Vec<DataStream>,
    stream_rx: Option<mpsc::Receiver<(TcpStream, SocketAddr)>>,
    udp_rx: Option<mpsc::Receiver<std::io::Result<(UdpSocket, SocketAddr)>>>,
    udp_accept: Option<tokio::task::JoinHandle<()>>,
    stats: Option<Stats>,
    t0: Option<Instant>,
    cpu_start: Option<(Instant, (f64, f64))>,
    cpu: (f64, f64, f64),
    congestion: Option<String>,
    client_results: Option<serde_json::Value>,
    listener_changed: bool,
    next_tick: Option<Instant>,
    last_tick_at: Option<Instant>,
    streams_stopped: bool,
    last_rx_bytes: u64,
    last_tx_bytes: u64,
    stream_broke: bool,
    announced: bool,
    /// The authenticated username, when authentication is required.
    user: Option<String>,
}

/// What woke the driver up.
enum Wake {
    Event(Event),
    Stream(TcpStream, SocketAddr),
    UdpStream(std::io::Result<(UdpSocket, SocketAddr)>),
    Tick,
    Deadline,
}

impl Test {
    fn params(&self) -> Option<&TestParams> {
        self.session.params()
    }

    async fn run(mut self, cookie: Option<Cookie>) {
        let mut pending: VecDeque<Action> = VecDeque::new();
        if let Some(why) = self.refused.clone() {
            eprintln!("webperf3: port {}: refused: {why}", self.ctx.port);
            pending.extend(
                self.session
                    .handle(Instant::now(), Event::Fault(ErrorCode::AUTH_TEST, None)),
            );
        } else if let Some(c) = cookie {
            pending.extend(self.session.handle(Instant::now(), Event::Cookie(c)));
        }
        loop {
            while let Some(action) = pending.pop_front() {
                if let Some(event) = self.perform(action).await {
                    // The session moved on; what it asked before is stale.
                    pending = self.session.handle(Instant::now(), event).into();
                }
            }
            if self.session.phase() == Phase::Finished {
                break;
            }
            let events = match self.wait().await {
                Wake::Event(e) => vec![e],
                Wake::Stream(conn, peer) => vec![self.add_stream(conn, peer)],
                Wake::UdpStream(result) => vec![self.add_udp_stream(result)],
                Wake::Tick => self.tick(),
                Wake::Deadline => self.at_deadline(),
            };
            for event in events {
                pending.extend(self.session.handle(Instant::now(), event));
            }
        }
        self.close().await;
    }

    async fn wait(&mut self) -> Wake {
        let expect = self.session.expect();
        let deadline = self.session.deadline().map(tokio::time::Instant::from_std);
        let tick = self.next_tick.map(tokio::time::Instant::from_std);
        let want_streams = self.session.phase() == Phase::Streams;
        let report_start = self.session.awaiting_first_byte();
        let stream_rx = self.stream_rx.as_mut();
        let udp_rx = self.udp_rx.as_mut();
        tokio::select! {
            biased;
            _ = self.ctx.shutdown.triggered() => {
                let text = self.ctx.shutdown.reason_or(errors::SERVER_TERMINATED_TERM);
                Wake::Event(Event::Shutdown(text))
            }
            Some((conn, peer)) = async { stream_rx?.recv().await }, if want_streams => Wake::Stream(conn, peer),
            Some(result) = async { udp_rx?.recv().await }, if want_streams => Wake::UdpStream(result),
            _ = sleep_until(tick), if tick.is_some() => Wake::Tick,
            _ = sleep_until(deadline), if deadline.is_some() => Wake::Deadline,
            ev = self.reader.next(expect, report_start), if expect != Expect::Nothing => Wake::Event(ev),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Option<Event> {
        let limit = self.ctx.settings.limits.read_total;
        let ok = matches!(
            tokio::time::timeout(limit, self.writer.write_all(bytes)).await,
            Ok(Ok(()))
        );
        // Once the session is over, a failed write changes nothing.
        (!ok && self.session.phase() != Phase::Finished).then_some(Event::Eof)
    }

    async fn perform(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Send(state) => self.send(&[state.byte()]).await,
            Action::SendError(code, errno) => self.send(&wire::server_error(code.0, errno)).await,
            Action::Prepare => Some(self.prepare().await),
            Action::StartTest => self.start_test().await,
            Action::EndTest => {
                self.end_test();
                None
            }
            Action::StopStreams => {
                self.streams.iter_mut().for_each(DataStream::stop);
                self.streams_stopped = true;
                None
            }
            Action::KeepClientResults(r) => {
                self.client_results = Some(r.document);
                None
            }
            Action::SendResults => {
                let doc = self.results_document();
                self.send(&wire::encode_frame(json::to_compact(&doc).as_bytes()))
                    .await
            }
            Action::Finish(error) => {
                self.finish(error).await;
                None
            }
        }
    }

    async fn reconfigure(&mut self, opts: ListenOpts) -> std::io::Result<(u32, u32)> {
        let (reply, rx) = oneshot::channel();
        self.ctx
            .reconfigure
            .send(Reconfigure { opts, reply })
            .await
            .map_err(|_| std::io::Error::other("port is shutting down"))?;
        rx.await
            .map_err(|_| std::io::Error::other("port is shutting down"))?
    }

    async fn restore_listener(&mut self) {
        if std::mem::take(&mut self.listener_changed) {
            if let Err(e) = self.reconfigure(ListenOpts::default()).await {
                eprintln!(
                    "webperf3: port {}: could not restore the listener: {e}",
                    self.ctx.port
                );
            }
        }
    }

    /// Checks the client's `authtoken` off the reactor (RSA takes
    /// milliseconds). A refusal is answered no sooner than
    /// [`AUTH_REFUSAL_DELAY`] after the check began, so its timing tells
    /// nothing about which check failed (with PKCS#1 v1.5 padding that
    /// would be a padding oracle), and guessing is slow.
    async fn authorized(&mut self, auth: Arc<Authenticator>, p: &TestParams) -> bool {
        let began = tokio::time::Instant::now();
        let token = p.authtoken.clone();
        let now_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let verdict = tokio::task::spawn_blocking(move || auth.verify(token.as_deref(), now_unix));
        let why = match verdict.await {
            Ok(Ok(user)) => {
                self.user = Some(user);
                return true;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the check failed: {e}"),
        };
        eprintln!(
            "webperf3: port {}: test from {} ({}) not authorized: {why}",
            self.ctx.port,
            self.peer.ip().to_canonical(),
            p.extra_data.as_deref().unwrap_or("-")
        );
        tokio::time::sleep_until(began + AUTH_REFUSAL_DELAY).await;
        false
    }

    /// Gets the data listener ready for the accepted parameters.
    async fn prepare(&mut self) -> Event {
        let Some(p) = self.params().cloned() else {
            return Event::Fault(ErrorCode::RECV_PARAMS, None);
        };
        // Authentication first: a refused client changes nothing here.
        if let Some(auth) = self.ctx.settings.auth.clone() {
            if !self.authorized(auth, &p).await {
                return Event::Fault(ErrorCode::AUTH_TEST, None);
            }
        }
        let cookie = self.session.cookie().map(|c| c.text()).unwrap_or_default();
        if p.protocol == Protocol::Udp {
            self.log
                .on_params(&p, None, self.accepted_at, &self.peer, &cookie);
            // Hellos carry no cookie: one test at a time sets up UDP streams.
            let lock = Arc::clone(&self.ctx.udp_setup);
            self.udp_guard = Some(lock.lock_owned().await);
            let listener = match udp::bind_listener(self.ctx.addr) {
                Ok(l) => l,
                Err(e) => {
                    return Event::Fault(
                        ErrorCode::STREAM_LISTEN,
                        Some(crate::sys::os_error_text(&e)),
                    )
                }
            };
            let (tx, rx) = mpsc::channel(p.stream_count() as usize);
            self.udp_accept = Some(tokio::spawn(udp::accept_streams(
                listener,
                self.ctx.addr,
                self.peer.ip(),
                p.stream_count(),
                tx,
            )));
            self.udp_rx = Some(rx);
            self.announce(&p);
            return Event::Prepared;
        }
        let (snd, rcv) = if p.window > 0 || p.mss > 0 {
            self.listener_changed = true;
            match self
                .reconfigure(ListenOpts {
                    window: p.window,
                    mss: p.mss,
                })
                .await
            {
                Ok(sizes) => sizes,
                Err(e) => {
                    let code = if p.mss > 0 && p.window == 0 {
                        ErrorCode::MSS
                    } else {
                        ErrorCode::SET_BUF
                    };
                    return Event::Fault(code, Some(crate::sys::os_error_text(&e)));
                }
            }
        } else {
            self.ctx.default_buffers
        };
        self.log.on_params(
            &p,
            Some((p.window, snd, rcv)),
            self.accepted_at,
            &self.peer,
            &cookie,
        );
        if p.window > 0 && (snd < p.window || rcv < p.window) {
            return Event::Fault(ErrorCode::SET_BUF2, None);
        }
        let (tx, rx) = mpsc::channel(p.stream_count() as usize);
        if let Some(c) = self.session.cookie() {
            self.slot.await_streams(c, tx);
        }
        self.stream_rx = Some(rx);
        self.announce(&p);
        Event::Prepared
    }

    /// Tells the dashboard the port is busy with this client.
    fn announce(&mut self, p: &TestParams) {
        self.ctx.hub.test_started(
            self.ctx.port,
            self.peer.ip().to_canonical(),
            p.extra_data.clone(),
        );
        self.announced = true;
    }

    /// The role of the next stream: the first `parallel` of a bidir test are
    /// the client's sending streams (the server receives on them).
    fn next_is_sender(&self, p: &TestParams) -> bool {
        let index = self.streams.len() as u32;
        if p.bidirectional {
            index >= p.parallel
        } else {
            p.reverse
        }
    }

    /// Sets up one UDP stream whose hello was answered.
    fn add_udp_stream(&mut self, result: std::io::Result<(UdpSocket, SocketAddr)>) -> Event {
        let Some(p) = self.params().cloned() else {
            return Event::Fault(ErrorCode::STREAM_ACCEPT, None);
        };
        let os = |e: &std::io::Error| Some(crate::sys::os_error_text(e));
        let (sock, peer) = match result {
            Ok(pair) => pair,
            Err(e) => return Event::Fault(ErrorCode::STREAM_ACCEPT, os(&e)),
        };
        let sender = self.next_is_sender(&p);
        let (snd, rcv) = match udp::set_buffers(&sock, p.window, p.len, !sender) {
            Ok(sizes) => sizes,
            Err(e) => return Event::Fault(ErrorCode::SET_BUF, os(&e)),
        };
        if p.window > 0 && (snd < p.window || rcv < p.window) {
            return Event::Fault(ErrorCode::SET_BUF2, None);
        }
        if self.streams.is_empty() {
            self.log.on_udp_buffers(p.window, snd, rcv);
        }
        let local = match sock.local_addr() {
            Ok(a) => a,
            Err(e) => return Event::Fault(ErrorCode::STREAM_ACCEPT, os(&e)),
        };
        apply_ip_options(&socket2::SockRef::from(&sock), &local, &p, self.ctx.port);
        if p.dont_fragment && peer.ip().to_canonical().is_ipv4() {
            if let Err(e) = crate::sys::set_dont_fragment(&sock) {
                eprintln!(
                    "webperf3: port {}: could not set don't-fragment: {e}",
                    self.ctx.port
                );
            }
        }
        let socket_no = i64::from(sock.as_raw_fd());
        let stream = DataStream::udp(socket_no, sender, local, peer, udp::body(sock, sender, &p));
        self.log
            .on_stream(stream.socket_no, &stream.local, &stream.remote);
        self.streams.push(stream);
        Event::StreamConnected
    }

    /// Sets up one accepted data connection with our cookie.
    fn add_stream(&mut self, conn: TcpStream, _peer: SocketAddr) -> Event {
        let Some(p) = self.params().cloned() else {
            return Event::Fault(ErrorCode::STREAM_ACCEPT, None);
        };
        let sender = self.next_is_sender(&p);
        let setup = || -> Result<DataStream, (ErrorCode, std::io::Error)> {
            let accept = |e| (ErrorCode::STREAM_ACCEPT, e);
            let std_conn = conn.into_std().map_err(accept)?;
            let sock = socket2::SockRef::from(&std_conn);
            if p.nodelay {
                sock.set_tcp_nodelay(true).map_err(accept)?;
            }
            if let Some(cc) = &p.congestion {
                if let Err(e) = sock.set_tcp_congestion(cc.as_bytes()) {
                    if e.raw_os_error() == Some(libc::ENOENT) {
                        eprintln!(
                            "webperf3: port {}: congestion algorithm {cc:?} not available",
                            self.ctx.port
                        );
                    } else {
                        return Err((ErrorCode::SET_CONGESTION, e));
                    }
                }
            }
            if let Ok(local) = std_conn.local_addr() {
                apply_ip_options(&sock, &local, &p, self.ctx.port);
            }
            DataStream::tcp(std_conn, sender).map_err(accept)
        };
        match setup() {
            Ok(stream) => {
                self.log
                    .on_stream(stream.socket_no, &stream.local, &stream.remote);
                self.streams.push(stream);
                Event::StreamConnected
            }
            Err((code, e)) => Event::Fault(code, Some(crate::sys::os_error_text(&e))),
        }
    }

    async fn start_test(&mut self) -> Option<Event> {
        self.slot.stop_streams();
        if let Some(mut rx) = self.stream_rx.take() {
            // More connections with our cookie than streams: refused, as
            // stock refuses them once all streams are there.
            rx.close();
            while let Ok((conn, _)) = rx.try_recv() {
                super::port::refuse(conn);
            }
        }
        self.udp_rx = None;
        self.udp_guard = None;
        self.restore_listener().await;
        let p = self.params()?.clone();
        self.running = Some(self.ctx.settings.overlaps.start());
        self.health.add(self.ctx.settings.health.sample());
        self.log.on_test_start(&p);
        let t0 = Instant::now();
        let metas: Vec<_> = self.streams.iter().map(|s| (s.socket_no, s.kind)).collect();
        self.stats = Some(Stats::new(&metas, p.parallel, t0, p.omit > 0));
        self.congestion = self.streams.first().and_then(DataStream::congestion);
        self.cpu_start = Some((t0, crate::sys::cpu_times()));
        self.t0 = Some(t0);
        self.next_tick = Some(t0 + Duration::from_secs(u64::from(INTERVAL_SECS)));
        for s in &mut self.streams {
            if let Err(e) = s.start(&p, p.data_path(self.ctx.settings.copy), t0) {
                return Some(Event::Fault(
                    ErrorCode::STREAM_ACCEPT,
                    Some(crate::sys::os_error_text(&e)),
                ));
            }
        }
        None
    }

    /// An interval sample; reports progress of the receiving and the
    /// sending streams.
    fn tick(&mut self) -> Vec<Event> {
        let now = Instant::now();
        let (Some(t0), Some(stats)) = (self.t0, self.stats.as_mut()) else {
            self.next_tick = None;
            return Vec::new();
        };
        let samples: Vec<_> = self.streams.iter().map(DataStream::sample).collect();
        let omit = self.session.params().map_or(0, |p| p.omit);
        let omit_end = t0 + Duration::from_secs(u64::from(omit));
        self.health.add(self.ctx.settings.health.sample());
        let mut over_limit = false;
        if let Some((interval, bps)) = stats.sample(now, &samples) {
            self.log.intervals.push(interval);
            self.ctx
                .hub
                .progress(self.ctx.port, bps, (now - t0).as_secs_f64());
            if let Some(limit) = self.ctx.settings.policy.bitrate_limit {
                let secs = (now - self.last_tick_at.unwrap_or(t0)).as_secs_f64();
                let bytes = (bps * secs / 8.0) as u64;
                over_limit = self.rate_window.exceeded(bytes, secs, limit);
            }
        }
        self.last_tick_at = Some(now);
        if stats.omitting() && now + Duration::from_millis(50) >= omit_end {
            stats.end_omit(now, &samples);
            for s in &self.streams {
                s.counters
                    .restart
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let step = Duration::from_secs(u64::from(INTERVAL_SECS));
        let next = self.next_tick.map_or(now + step, |t| t + step);
        self.next_tick = Some(if next <= now { now + step } else { next });
        if over_limit {
            return vec![Event::Fault(ErrorCode::TOTAL_RATE, None)];
        }
        // A data stream that broke (reset, read or write error) ends the
        // test, one tick later: a client that was killed closes its control
        // connection at the same moment, and that is what it should say.
        let broken = self
            .streams
            .iter()
            .find_map(|s| s.failure().map(|errno| (s.kind.sender, errno)));
        if let Some((sender, errno)) = broken {
            if std::mem::replace(&mut self.stream_broke, true) {
                let code = if sender {
                    ErrorCode::STREAM_WRITE
                } else {
                    ErrorCode::STREAM_READ
                };
                let os = std::io::Error::from_raw_os_error(errno);
                let text = (errno != 0).then(|| crate::sys::os_error_text(&os));
                return vec![Event::Fault(code, Some(text.unwrap_or_default()))];
            }
        }
        self.progress()
    }

    /// The session's deadline passed. While data flows, progress is looked
    /// at first (the interval tick may be further away than a short receive
    /// timeout); the session ignores a timeout that progress moved away.
    fn at_deadline(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if self.session.phase() == Phase::Running {
            events = self.progress();
        }
        events.push(Event::Timeout);
        events
    }

    /// Whether the streams moved data since the last look: received bytes
    /// ([`Event::DataProgress`]), and sent bytes or sending streams that are
    /// not stuck ([`Event::SendProgress`]).
    fn progress(&mut self) -> Vec<Event> {
        let total = |sender: bool| -> u64 {
            self.streams
                .iter()
                .filter(|s| s.kind.sender == sender)
                .map(|s| s.sample_bytes())
                .sum()
        };
        let (rx, tx) = (total(false), total(true));
        let received = rx > self.last_rx_bytes;
        // Sending is stuck only when nothing went out and every sending
        // stream sits in a write (the client stopped reading) or broke; a
        // stream waiting for its pacing is fine.
        let stuck = self
            .streams
            .iter()
            .filter(|s| s.kind.sender)
            .all(|s| s.blocked_in_write() || s.failure().is_some());
        let sent = tx > self.last_tx_bytes || !stuck;
        self.last_rx_bytes = rx;
        self.last_tx_bytes = tx;
        let mut events = Vec::new();
        if received {
            events.push(Event::DataProgress);
        }
        if sent {
            events.push(Event::SendProgress);
        }
        events
    }

    fn end_test(&mut self) {
        self.next_tick = None;
        if let Some(running) = self.running.take() {
            self.overlapped = Some(running.overlapped());
        }
        self.health.add(self.ctx.settings.health.sample());
        let now = Instant::now();
        if let Some(stats) = self.stats.as_mut() {
            let samples: Vec<_> = self.streams.iter().map(DataStream::sample).collect();
            if let Some((interval, _)) = stats.sample(now, &samples) {
                self.log.intervals.push(interval);
            }
            if let Some((started, (u0, s0))) = self.cpu_start {
                let (u1, s1) = crate::sys::cpu_times();
                let wall = (now - started).as_secs_f64();
                if wall > 0.0 {
                    let (u, s) = ((u1 - u0) / wall * 100.0, (s1 - s0) / wall * 100.0);
                    self.cpu = (u + s, u, s);
                }
            }
            self.log.end = stats.end(self.cpu, self.congestion.as_deref());
        }
    }

    fn results_document(&self) -> Json {
        let p = self.params();
        let ids: Vec<i64> = (0..self.streams.len()).map(stream_id).collect();
        let server_output = p
            .is_some_and(|p| p.get_server_output)
            .then(|| self.log.body());
        let tcp = p.is_some_and(|p| p.protocol == Protocol::Tcp);
        let congestion = if tcp {
            Some(self.congestion.as_deref().unwrap_or("unknown"))
        } else {
            None
        };
        match &self.stats {
            Some(stats) => results_document(stats, &ids, self.cpu, congestion, server_output),
            None => Json::obj(),
        }
    }

    async fn finish(&mut self, error: Option<String>) {
        if self.t0.is_some() && !self.streams_stopped {
            // The test ends while data still flows (server shutdown, an
            // error, a limit): give the client a moment to read why and hang
            // up before its streams break under it.
            let goodbye =
                async { while self.reader.next(Expect::StateByte, false).await != Event::Eof {} };
            let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
        }
        for s in &mut self.streams {
            s.stop();
        }
        // A client that just finished may start its next test at once.
        self.slot.release();
        self.stream_rx = None;
        self.udp_rx = None;
        self.udp_guard = None;
        if let Some(running) = self.running.take() {
            self.overlapped = Some(running.overlapped());
        }
        if let Some(task) = self.udp_accept.take() {
            task.abort();
        }
        self.restore_listener().await;
        if let (Some(e), Some(p)) = (&error, self.params()) {
            eprintln!(
                "webperf3: port {}: test from {} ({}) ended: {e}",
                self.ctx.port,
                self.peer.ip().to_canonical(),
                p.extra_data.as_deref().unwrap_or("-")
            );
        }
        let p = self.params();
        let mut ours = Json::obj();
        if let Some(v) = p.and_then(|p| p.client_version.clone()) {
            ours.push("client_version", v);
        }
        if let Some(user) = &self.user {
            ours.push("user", user.clone());
        }
        if let Some(overlapped) = self.overlapped {
            ours.push("overlapped", overlapped);
            ours.push("health", self.health.to_json(self.cpu.0));
        }
        if let Some(why) = &self.refused {
            ours.push("refused", why.as_str());
        }
        if let Some(doc) = &self.client_results {
            ours.push("client_results", json::from_value(doc));
        }
        if let Some(path) = data_path_json(&self.streams, self.ctx.settings.copy) {
            ours.push("data_path", path);
        }
        let entry = self.log.entry(
            error.as_deref(),
            p.and_then(|p| p.title.as_deref()),
            p.and_then(|p| p.extra_data.as_deref()),
            ours,
        );
        let text = json::to_pretty(&entry);
        let hub = Arc::clone(&self.ctx.hub);
        let port = self.ctx.port;
        // The append is one write to local storage; keep it off the reactor.
        let _ = tokio::task::spawn_blocking(move || hub.record_entry(port, &text)).await;
        if self.announced {
            self.ctx.hub.test_ended(self.ctx.port);
        }
    }

    /// Half-closes the control connection and drains what the client still
    /// sends, so our last bytes reach it before any reset.
    async fn close(self) {
        let Test {
            mut writer,
            mut reader,
            slot,
            ..
        } = self;
        // The port is free again before the client sees our end, so a client
        // that reconnects at once is not told "busy"; the drain follows.
        drop(slot);
        let _ = writer.shutdown().await;
        let mut sink = [0u8; 1024];
        let drain = async {
            while let Ok(n) = reader.rd.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
}

/// TOS / traffic class and the fq pacing rate, on a data socket. Failures
/// are reported and do not stop the test (stock: warnings).
fn apply_ip_options(sock: &socket2::SockRef<'_>, local: &SocketAddr, p: &TestParams, port: u16) {
    if p.tos > 0 {
        let tos = u32::from(p.tos);
        let r = match local {
            SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_none() => sock.set_tclass_v6(tos),
            SocketAddr::V6(_) => sock.set_tclass_v6(tos).and_then(|_| sock.set_tos_v4(tos)),
            SocketAddr::V4(_) => sock.set_tos_v4(tos),
        };
        if let Err(e) = r {
            eprintln!("webperf3: port {port}: could not set TOS {tos}: {e}");
        }
    }
    if p.fqrate > 0 {
        if let Err(e) = crate::sys::set_max_pacing_rate(&**sock, p.fqrate / 8) {
            eprintln!("webperf3: port {port}: could not set the fq rate: {e}");
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The control connection's read side with its buffer: "not enough bytes
/// yet" is simply waiting for more; reads are cancel-safe.
struct ControlReader {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
    eof: bool,
}

impl ControlReader {
    fn parse(&mut self, expect: Expect) -> Option<Event> {
        let frame = |buf: &[u8], max| match wire::decode_frame(buf, max) {
            Ok(Some((body, used))) => Some(Ok((body.to_vec(), used))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        };
        let (event, used) = match expect {
            Expect::Cookie if self.buf.len() >= COOKIE_LEN => {
                let mut raw = [0u8; COOKIE_LEN];
                raw.copy_from_slice(&self.buf[..COOKIE_LEN]);
                (Event::Cookie(Cookie(raw)), COOKIE_LEN)
            }
            Expect::StateByte if !self.buf.is_empty() => (Event::StateByte(self.buf[0]), 1),
            Expect::Params | Expect::Results => {
                let max = if expect == Expect::Params {
                    MAX_PARAMS_LEN
                } else {
                    MAX_RESULTS_LEN
                };
                match frame(&self.buf, max)? {
                    Ok((body, used)) if expect == Expect::Params => (Event::Params(body), used),
                    Ok((body, used)) => (Event::ClientResults(body), used),
                    Err(e) => return Some(Event::ReadFailed(Some(e.to_string()))),
                }
            }
            _ => return None,
        };
        self.buf.drain(..used);
        Some(event)
    }

    /// The next event for what the session expects. With `report_start`,
    /// the first bytes of an incomplete message are reported as
    /// [`Event::ReadStarted`] (once: the session then stops asking).
    async fn next(&mut self, expect: Expect, report_start: bool) -> Event {
        loop {
            if let Some(event) = self.parse(expect) {
                return event;
            }
            if report_start && !self.buf.is_empty() {
                return Event::ReadStarted;
            }
            if self.eof {
                return match expect {
                    Expect::Cookie if self.buf.is_empty() => Event::ReadFailed(None),
                    Expect::Cookie | Expect::Params | Expect::Results => {
                        Event::ReadFailed(Some(String::new()))
                    }
                    _ => Event::Eof,
                };
            }
            match self.rd.read_buf(&mut self.buf).await {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => {
                    self.eof = true;
                    if matches!(expect, Expect::Params | Expect::Results) {
                        return Event::ReadFailed(Some(crate::sys::os_error_text(&e)));
                    }
                }
            }
        }
    }
}
