//! The driver of one test: from its accepted control connection to its log
//! entry. It pumps the control connection, the data stream arrivals and the
//! session's deadline into the [`Session`], and carries out the actions it
//! answers with. Every protocol decision (timeouts, the bitrate cap, the
//! omit end, broken or stuck streams, buffer checks, the allow-list) is the
//! session's; the driver moves bytes, samples counters and sleeps.
//!
//! - this file: the per-test state and the run loop (wait, feed, perform).
//! - `control_io.rs`: the control connection's timed reads and writes.
//! - `setup.rs`: the data listener and the data streams, with their socket
//!   options, up to the start of the data phase.
//! - `sample.rs`: the stream counters into ticks, intervals and `end`.
//! - `finish.rs`: the results document and the finished log entry.

mod control_io;
mod finish;
mod sample;
mod setup;

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tracing::Instrument;

use self::control_io::ControlReader;
use super::overlap::Running;
use super::slot::{PortCtx, TestSlot};
use super::streams::DataStream;
use crate::health;
use crate::json;
use crate::protocol::errors;
use crate::protocol::params::TestParams;
use crate::protocol::session::{Action, Event, Expect, Phase, Session};
use crate::protocol::wire::{self, Cookie};
use crate::report::stats::{Sample, Stats};
use crate::report::tcp_receive::TcpReceive;
use crate::report::tcp_send::TcpSend;
use crate::report::test_log::TestLog;
use crate::send_method::Choice;

/// Runs one test from its accepted control connection to its log entry.
/// `cookie` is given when the port already read it; `permit` is the port's
/// count of this connection, held until it is closed. The test runs in a
/// span with the port, the client's address and (once known) its name.
pub fn run_test(
    conn: TcpStream,
    peer: SocketAddr,
    cookie: Option<Cookie>,
    slot: TestSlot,
    permit: OwnedSemaphorePermit,
    ctx: Arc<PortCtx>,
) -> impl std::future::Future<Output = ()> + Send {
    let span = tracing::info_span!(
        "test",
        port = ctx.port,
        client = %peer.ip().to_canonical(),
        name = tracing::field::Empty,
    );
    async move {
        setup::control_options(&conn);
        let (rd, wr) = conn.into_split();
        let session = Session::new(Instant::now(), ctx.settings.limits)
            .with_policy(ctx.settings.policy.clone())
            .with_auth(ctx.settings.auth.is_some());
        let test = Test {
            session,
            refused: None,
            overlap: Overlap::Before,
            health: health::Record::default(),
            ctx,
            slot,
            _permit: permit,
            reader: ControlReader::new(rd),
            writer: wr,
            peer,
            accepted_at: SystemTime::now(),
            log: TestLog::new(),
            streams: Vec::new(),
            routes: Routes::default(),
            udp_accept: None,
            measuring: None,
            tcp_send: TcpSend::default(),
            tcp_receive: TcpReceive::default(),
            client_results: None,
            listener_changed: false,
            streams_stopped: false,
            announced: false,
            user: None,
            unlogged: false,
            intervals_dropped: 0,
        };
        test.run(cookie).await;
    }
    .instrument(span)
}

/// The state of one test while its driver runs.
struct Test {
    /// The port this test runs on.
    ctx: Arc<PortCtx>,
    /// The protocol state machine.
    session: Session,
    /// Why the client was refused before anything else (`--allow`).
    refused: Option<String>,
    /// This test among the tests moving data: before, during, after.
    overlap: Overlap,
    /// Temperature and throttling seen during the test.
    health: health::Record,
    /// This test's place on the port (and its stream routing).
    slot: TestSlot,
    /// The port's count of the control connection.
    _permit: OwnedSemaphorePermit,
    /// The control connection's read side.
    reader: ControlReader,
    /// The control connection's write side.
    writer: OwnedWriteHalf,
    /// The client's control connection address.
    peer: SocketAddr,
    /// When the control connection was accepted (the log's timestamp).
    accepted_at: SystemTime,
    /// The server's own log of the test, built as it runs.
    log: TestLog,
    /// The data streams, in order of arrival.
    streams: Vec<DataStream>,
    /// Where the data streams arrive while they are set up.
    routes: Routes,
    /// The task answering UDP hellos (until the port is freed).
    udp_accept: Option<tokio::task::JoinHandle<()>>,
    /// The data phase's clock and figures, from its start on.
    measuring: Option<Measuring>,
    /// TCP_INFO of the sending TCP streams, as last read.
    tcp_send: TcpSend,
    /// Round trips of the receiving TCP streams, per interval.
    tcp_receive: TcpReceive,
    /// The client's results document, once checked.
    client_results: Option<serde_json::Value>,
    /// The listener was re-created for this test's window or MSS.
    listener_changed: bool,
    /// The data streams were stopped at `TEST_END`.
    streams_stopped: bool,
    /// The dashboard was told the port is busy with this test.
    announced: bool,
    /// The authenticated username, when authentication is required.
    user: Option<String>,
    /// The test ends without a log entry: its client was refused before it
    /// was admitted (counted on stderr instead, see
    /// [`crate::protocol::admission`]).
    unlogged: bool,
    /// Intervals left out of the log past
    /// [`sample::MAX_KEPT_INTERVAL_RECORDS`].
    intervals_dropped: u64,
}

/// Where a test's data streams arrive while they are set up (from its
/// parameters to the start of the data phase); empty otherwise.
#[derive(Default)]
struct Routes {
    /// TCP data connections routed to this test by cookie.
    tcp: Option<mpsc::Receiver<(TcpStream, SocketAddr)>>,
    /// UDP streams whose hello was answered, and the port's UDP set-up
    /// lock, held while they are set up.
    udp: Option<UdpRoutes>,
}

/// A UDP test's streams while they are set up.
struct UdpRoutes {
    /// UDP streams whose hello was answered.
    rx: mpsc::Receiver<std::io::Result<(UdpSocket, SocketAddr)>>,
    /// Held while this test's UDP streams are set up.
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

/// The data phase of a test: what starts with it, all at once.
struct Measuring {
    /// When the data streams started.
    t0: Instant,
    /// The process CPU times (user, system) at [`Measuring::t0`].
    cpu_at_t0: (f64, f64),
    /// Interval statistics.
    stats: Stats,
    /// The last interval sample: when, and every stream's counters.
    last_sample: Option<(Instant, Vec<Sample>)>,
    /// The congestion algorithm of the first TCP stream.
    congestion: Option<String>,
    /// How the sending TCP streams started to move bytes, and why.
    send_choice: Choice,
    /// CPU use over the test: total, user, system (%), once it ended.
    cpu: (f64, f64, f64),
    /// CPU use of each stream's thread over the test: (socket, % of a
    /// core), once it ended.
    stream_cpu: Vec<(i64, f64)>,
}

/// A test among the tests moving data on the box.
enum Overlap {
    /// Its data phase has not started.
    Before,
    /// Its data phase runs: its registration.
    Running(Running),
    /// Its data phase is over: whether another test moved data meanwhile.
    After(bool),
}

impl Overlap {
    /// The data phase is over (if it ran): the registration ends.
    fn end(&mut self) {
        if let Overlap::Running(running) = self {
            let overlapped = running.overlapped();
            *self = Overlap::After(overlapped);
        }
    }
}

/// What woke the driver up.
enum Wake {
    /// The control connection (or shutdown) produced an event.
    Event(Event),
    /// A TCP data connection with our cookie arrived.
    Stream(TcpStream, SocketAddr),
    /// A UDP stream was set up (or failed to be).
    UdpStream(std::io::Result<(UdpSocket, SocketAddr)>),
    /// The session's deadline passed.
    Deadline,
}

impl Test {
    /// The accepted parameters, once there are some.
    fn params(&self) -> Option<&TestParams> {
        self.session.params()
    }

    async fn run(mut self, cookie: Option<Cookie>) {
        let mut pending: VecDeque<Action> = VecDeque::new();
        let now = Instant::now();
        pending.extend(self.session.handle(now, Event::Connected(self.peer.ip())));
        if let Some(c) = cookie {
            pending.extend(self.session.handle(now, Event::Cookie(c)));
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
            let event = match self.wait().await {
                Wake::Event(e) => e,
                Wake::Stream(conn, peer) => self.add_stream(conn, peer),
                Wake::UdpStream(result) => self.add_udp_stream(result),
                Wake::Deadline => Event::Tick(self.counters()),
            };
            pending.extend(self.session.handle(Instant::now(), event));
        }
        let Test {
            writer,
            reader,
            slot,
            ..
        } = self;
        // The port is free again before the client sees our end, so a client
        // that reconnects at once is not told "busy"; the drain follows.
        drop(slot);
        control_io::close(writer, reader).await;
    }

    async fn wait(&mut self) -> Wake {
        let expect = self.session.expect();
        let deadline = self.session.deadline().map(tokio::time::Instant::from_std);
        let want_streams = self.session.phase() == Phase::Streams;
        let report_start = self.session.awaiting_first_byte();
        let stream_rx = self.routes.tcp.as_mut();
        let udp_rx = self.routes.udp.as_mut().map(|u| &mut u.rx);
        tokio::select! {
            biased;
            _ = self.ctx.shutdown.triggered() => {
                let text = self.ctx.shutdown.reason_or(errors::SERVER_TERMINATED_TERM);
                Wake::Event(Event::Shutdown(text))
            }
            Some((conn, peer)) = async { stream_rx?.recv().await }, if want_streams => Wake::Stream(conn, peer),
            Some(result) = async { udp_rx?.recv().await }, if want_streams => Wake::UdpStream(result),
            _ = sleep_until(deadline), if deadline.is_some() => Wake::Deadline,
            ev = self.reader.next(expect, report_start), if expect != Expect::Nothing => Wake::Event(ev),
        }
    }

    /// Sends `bytes` on the control connection within the read-total limit;
    /// a failed send while the session still runs is its EOF.
    async fn send(&mut self, bytes: &[u8]) -> Option<Event> {
        let limit = self.ctx.settings.limits.read_total;
        let ok = control_io::send(&mut self.writer, bytes, limit).await;
        // Once the session is over, a failed write changes nothing.
        (!ok && self.session.phase() != Phase::Finished).then_some(Event::Eof)
    }

    async fn perform(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Send(state) => self.send(&[state.byte()]).await,
            Action::SendError(code, errno) => self.send(&wire::server_error(code.0, errno)).await,
            Action::Refused(why) => {
                tracing::warn!(why = %why, "refused");
                self.refused = Some(why);
                None
            }
            Action::Authenticate(token) => Some(self.authenticate(token).await),
            Action::Prepare => Some(self.prepare().await),
            Action::StartTest => Some(self.start_test().await),
            Action::SampleInterval => {
                self.sample_interval();
                None
            }
            Action::EndOmit => {
                self.end_omit();
                None
            }
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
            Action::FreePort => {
                self.free_port().await;
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
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
