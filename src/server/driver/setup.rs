//! Getting a test's data path ready: socket options of the control
//! connection, the authentication check, the data listener (re-created for
//! a window or MSS, or the UDP hello listener), each data stream with its
//! socket options, and the start of the data phase. What counts as a
//! failure (and which error code it gets) is the session's call.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::{Measuring, Overlap, Test, UdpRoutes};
use crate::protocol::admission::Refusal;
use crate::protocol::errors::ErrorCode;
use crate::protocol::params::{DataPath, Protocol, TestParams};
use crate::protocol::session::{BufferSocket, Event};
use crate::report::stats::Stats;
use crate::send_method::SendMethod;
use crate::server::listen::ListenOpts;
use crate::server::slot::{refuse, Reconfigure};
use crate::server::streams::DataStream;
use crate::server::udp;
use crate::sys::os_error_text;

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

/// No delay and keepalive on a new control connection (best effort).
pub(super) fn control_options(conn: &TcpStream) {
    let _ = conn.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    let _ = socket2::SockRef::from(conn).set_tcp_keepalive(&keepalive);
}

impl Test {
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

    /// Puts the listener back as it was before this test's window or MSS.
    pub(super) async fn restore_listener(&mut self) {
        if std::mem::take(&mut self.listener_changed) {
            if let Err(e) = self.reconfigure(ListenOpts::default()).await {
                tracing::warn!(error = %e, "could not restore the listener");
            }
        }
    }

    /// Checks the client's `authtoken` off the reactor (RSA takes
    /// milliseconds), then counts the test on its port. A refusal is
    /// answered no sooner than [`AUTH_REFUSAL_DELAY`] after the check
    /// began, so its timing tells nothing about which check failed (with
    /// PKCS#1 v1.5 padding that would be a padding oracle), and guessing is
    /// slow. A refused client leaves no log entry: refusals are counted.
    pub(super) async fn authenticate(&mut self, token: Option<String>) -> Event {
        let Some(auth) = self.ctx.settings.auth.clone() else {
            return Event::Authenticated;
        };
        let began = tokio::time::Instant::now();
        let now_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let verdict = tokio::task::spawn_blocking(move || auth.verify(token.as_deref(), now_unix));
        let why = match verdict.await {
            Ok(Ok(user)) => {
                self.user = Some(user);
                if self.slot.claim() {
                    return Event::Authenticated;
                }
                self.unlogged = true;
                return Event::Busy;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the check failed: {e}"),
        };
        self.unlogged = true;
        self.ctx
            .refused(self.peer.ip(), Refusal::NotAuthorized, Some(&why));
        tokio::time::sleep_until(began + AUTH_REFUSAL_DELAY).await;
        Event::Fault(ErrorCode::AUTH_TEST, None)
    }

    /// Gets the data listener ready for the accepted parameters.
    pub(super) async fn prepare(&mut self) -> Event {
        let Some(p) = self.params().cloned() else {
            return Event::Fault(ErrorCode::RECV_PARAMS, None);
        };
        let name = p.extra_data.as_deref().unwrap_or("-");
        tracing::Span::current().record("name", tracing::field::debug(name));
        let cookie = self.session.cookie().map(|c| c.text()).unwrap_or_default();
        if p.protocol == Protocol::Udp {
            self.log
                .on_params(&p, None, self.accepted_at, &self.peer, &cookie);
            // Hellos carry no cookie: one test at a time sets up UDP streams.
            let lock = Arc::clone(&self.ctx.udp_setup);
            let guard = lock.lock_owned().await;
            let listener = match udp::bind_listener(self.ctx.addr) {
                Ok(l) => l,
                Err(e) => return Event::Fault(ErrorCode::STREAM_LISTEN, Some(os_error_text(&e))),
            };
            let (tx, rx) = mpsc::channel(p.stream_count() as usize);
            self.udp_accept = Some(tokio::spawn(udp::accept_streams(
                listener,
                self.ctx.addr,
                self.peer.ip(),
                p.stream_count(),
                tx,
            )));
            self.routes.udp = Some(UdpRoutes { rx, _guard: guard });
            self.announce(&p);
            return Event::Prepared;
        }
        let sizes = if p.window > 0 || p.mss > 0 {
            self.listener_changed = true;
            let opts = ListenOpts {
                window: p.window,
                mss: p.mss,
            };
            self.reconfigure(opts).await.map_err(|e| os_error_text(&e))
        } else {
            Ok(self.ctx.default_buffers)
        };
        if let Ok((snd, rcv)) = sizes {
            let window = Some((p.window, snd, rcv));
            self.log
                .on_params(&p, window, self.accepted_at, &self.peer, &cookie);
        }
        if let Some(fault) = self.session.buffer_fault(&sizes, BufferSocket::Listener) {
            return fault;
        }
        let (tx, rx) = mpsc::channel(p.stream_count() as usize);
        if let Some(c) = self.session.cookie() {
            self.slot.await_streams(c, self.peer.ip(), tx);
        }
        self.routes.tcp = Some(rx);
        self.announce(&p);
        Event::Prepared
    }

    /// Tells the dashboard the port is busy with this client.
    fn announce(&mut self, p: &TestParams) {
        let direction = if p.bidirectional {
            "both"
        } else if p.reverse {
            "download"
        } else {
            "upload"
        };
        let timed = p.time > 0 && p.num == 0 && p.blockcount == 0;
        let duration = timed.then(|| p.time.saturating_add(p.omit));
        let plan = crate::hub::Plan {
            direction: Some(direction),
            duration,
        };
        self.ctx.hub.test_started_with(
            self.ctx.port,
            self.peer.ip().to_canonical(),
            p.extra_data.clone(),
            plan,
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
    pub(super) fn add_udp_stream(
        &mut self,
        result: std::io::Result<(UdpSocket, SocketAddr)>,
    ) -> Event {
        let Some(p) = self.params().cloned() else {
            return Event::Fault(ErrorCode::STREAM_ACCEPT, None);
        };
        let os = |e: &std::io::Error| Some(os_error_text(e));
        let (sock, peer) = match result {
            Ok(pair) => pair,
            Err(e) => return Event::Fault(ErrorCode::STREAM_ACCEPT, os(&e)),
        };
        let sender = self.next_is_sender(&p);
        let sizes =
            udp::set_buffers(&sock, p.window, p.len, !sender).map_err(|e| os_error_text(&e));
        if let Some(fault) = self.session.buffer_fault(&sizes, BufferSocket::UdpStream) {
            return fault;
        }
        if let (true, Ok((snd, rcv))) = (self.streams.is_empty(), sizes) {
            self.log.on_udp_buffers(p.window, snd, rcv);
        }
        let local = match sock.local_addr() {
            Ok(a) => a,
            Err(e) => return Event::Fault(ErrorCode::STREAM_ACCEPT, os(&e)),
        };
        apply_ip_options(&socket2::SockRef::from(&sock), &local, &p);
        if p.dont_fragment && peer.ip().to_canonical().is_ipv4() {
            if let Err(e) = crate::sys::set_dont_fragment(&sock) {
                tracing::warn!(error = %e, "could not set don't-fragment");
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
    pub(super) fn add_stream(&mut self, conn: TcpStream, _peer: SocketAddr) -> Event {
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
                        tracing::warn!(algorithm = ?cc, "congestion algorithm not available");
                    } else {
                        return Err((ErrorCode::SET_CONGESTION, e));
                    }
                }
            }
            if let Ok(local) = std_conn.local_addr() {
                apply_ip_options(&sock, &local, &p);
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
            Err((code, e)) => Event::Fault(code, Some(os_error_text(&e))),
        }
    }

    /// Every stream is there: stops routing, restores the listener, and
    /// starts the streams, the statistics and the CPU clock.
    pub(super) async fn start_test(&mut self) -> Event {
        self.slot.stop_streams();
        let routes = std::mem::take(&mut self.routes);
        if let Some(mut rx) = routes.tcp {
            // More connections with our cookie than streams: refused, as
            // stock refuses them once all streams are there.
            rx.close();
            while let Ok((conn, _)) = rx.try_recv() {
                refuse(conn);
            }
        }
        drop(routes.udp);
        self.restore_listener().await;
        let Some(p) = self.params().cloned() else {
            return Event::Fault(ErrorCode::STREAM_ACCEPT, None);
        };
        self.overlap = Overlap::Running(self.ctx.settings.overlaps.start());
        self.health.add(self.ctx.settings.health.sample());
        self.log.on_test_start(&p);
        let t0 = Instant::now();
        let metas: Vec<_> = self.streams.iter().map(|s| (s.socket_no, s.kind)).collect();
        let settings = &self.ctx.settings;
        let choice = settings.send.choice(settings.copy, p.zerocopy);
        let path = DataPath {
            send_file: choice.method == SendMethod::Sendfile,
            ..p.data_path(settings.copy)
        };
        self.measuring = Some(Measuring {
            stats: Stats::new(&metas, p.parallel, t0, p.omit > 0),
            congestion: self.streams.first().and_then(DataStream::congestion),
            cpu_at_t0: crate::sys::cpu_times(),
            t0,
            last_sample: None,
            send_choice: choice,
            cpu: (0.0, 0.0, 0.0),
            stream_cpu: Vec::new(),
        });
        for s in &mut self.streams {
            if let Err(e) = s.start(&p, path, t0) {
                return Event::Fault(ErrorCode::STREAM_ACCEPT, Some(os_error_text(&e)));
            }
        }
        Event::Started
    }
}

/// TOS / traffic class and the fq pacing rate, on a data socket. Failures
/// are reported and do not stop the test (stock: warnings).
fn apply_ip_options(sock: &socket2::SockRef<'_>, local: &SocketAddr, p: &TestParams) {
    if p.tos > 0 {
        let tos = u32::from(p.tos);
        let r = match local {
            SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_none() => sock.set_tclass_v6(tos),
            SocketAddr::V6(_) => sock.set_tclass_v6(tos).and_then(|_| sock.set_tos_v4(tos)),
            SocketAddr::V4(_) => sock.set_tos_v4(tos),
        };
        if let Err(e) = r {
            tracing::warn!(tos, error = %e, "could not set TOS");
        }
    }
    if p.fqrate > 0 {
        if let Err(e) = crate::sys::set_max_pacing_rate(&**sock, p.fqrate / 8) {
            tracing::warn!(error = %e, "could not set the fq rate");
        }
    }
}
