//! What flows between the driver and the session: the events it is fed
//! (with the stream counters of a tick), the actions it answers with, and
//! what it expects to read next.

use std::net::IpAddr;

use crate::protocol::errors::ErrorCode;
use crate::protocol::results_exchange::PeerResults;
use crate::protocol::wire::{Cookie, State};

/// What the driver read off the data streams at a tick: totals since the
/// streams started, and whether they can move at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes received on every receiving stream so far.
    pub received: u64,
    /// Bytes sent on every sending stream so far.
    pub sent: u64,
    /// Some sending stream is neither blocked in a write nor broken: it
    /// waits for its pacing, which is no stall.
    pub pacing: bool,
    /// The first stream that broke (reset, read or write error): whether
    /// the server sends on it, and the OS error text when there was one.
    pub broken: Option<(bool, Option<String>)>,
}

/// Which socket's buffer sizes [`crate::protocol::session::Session::buffer_fault`] judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferSocket {
    /// The TCP data listener, re-created for the window and MSS.
    Listener,
    /// A UDP data stream's socket.
    UdpStream,
}

/// Where a test's control connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the 37-byte cookie.
    Cookie,
    /// `PARAM_EXCHANGE` sent; waiting for the parameters.
    Params,
    /// Parameters accepted; the driver prepares the data listener.
    Preparing,
    /// `CREATE_STREAMS` sent; waiting for the data streams.
    Streams,
    /// `TEST_START`/`TEST_RUNNING` sent; data flows until `TEST_END`.
    Running,
    /// `EXCHANGE_RESULTS` sent; waiting for the client's results.
    Results,
    /// `DISPLAY_RESULTS` sent; waiting for `IPERF_DONE` or EOF.
    Done,
    /// Over; the log entry has been asked for.
    Finished,
}

/// What the driver tells the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The control connection was accepted from this address (fed first:
    /// the allow-list is checked before anything is read).
    Connected(IpAddr),
    /// The cookie arrived.
    Cookie(Cookie),
    /// A parameters document arrived (its body).
    Params(Vec<u8>),
    /// The first bytes of the awaited cookie, parameters or results arrived
    /// (the rest may follow; the message now has the whole `read_total`).
    ReadStarted,
    /// Reading the cookie, parameters or results failed: EOF before the
    /// whole message, an oversized or empty length prefix, an OS error.
    ReadFailed(Option<String>),
    /// The client authenticated (after [`Action::Authenticate`]).
    Authenticated,
    /// The client authenticated, but the port has no room for its test
    /// (checked only then when authentication is required).
    Busy,
    /// The data listener is ready for this test's streams.
    Prepared,
    /// One more data stream with our cookie was accepted.
    StreamConnected,
    /// A state byte arrived.
    StateByte(u8),
    /// The control connection reached EOF (or a write to it failed).
    Eof,
    /// The client's results document arrived (its body).
    ClientResults(Vec<u8>),
    /// The data streams started (after [`Action::StartTest`]): intervals
    /// and the omit period count from now.
    Started,
    /// The deadline from [`crate::protocol::session::Session::deadline`]
    /// passed, with the stream counters sampled now (all zero before the
    /// data phase). Reported early, only the counters count.
    Tick(Counters),
    /// A failure on the server's side, to be reported with this code.
    Fault(ErrorCode, Option<String>),
    /// The server is shutting down; the text is the log's `error`.
    Shutdown(&'static str),
}

/// What the session asks the driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send one state byte.
    Send(State),
    /// Send `SERVER_ERROR` with this code and errno.
    SendError(ErrorCode, i32),
    /// Check the client's credentials (the parameters' `authtoken`, if it
    /// sent one), then report [`Event::Authenticated`], [`Event::Busy`] or
    /// [`Event::Fault`]. Asked before the parameters are judged, so that
    /// only an authenticated client learns the server's limits.
    Authenticate(Option<String>),
    /// Prepare the data listener for these parameters (window, MSS, UDP
    /// socket), then report [`Event::Prepared`] or [`Event::Fault`].
    Prepare,
    /// Start the data streams and the CPU clock, then report
    /// [`Event::Started`] (or [`Event::Fault`]).
    StartTest,
    /// Take an interval sample: log it, show it, note the machine's health.
    SampleInterval,
    /// The omit period is over: the last sample becomes every stream's
    /// baseline and receivers restart their jitter measurement.
    EndOmit,
    /// The client's address is not allowed (`--allow`); the text says so
    /// in the log. The refusal itself follows.
    Refused(String),
    /// Take the final sample and build `end`.
    EndTest,
    /// Stop the data streams.
    StopStreams,
    /// The client's results passed the checks; keep them for the log.
    KeepClientResults(PeerResults),
    /// Send the server's results document.
    SendResults,
    /// The data phase and the results exchange are over: stop holding the
    /// port, so the client's next test (which may start the moment it has
    /// [`State::DisplayResults`]) is not told the server is busy. Only the
    /// client's goodbye and the log entry are left.
    FreePort,
    /// The test is over: close everything and write the log entry with this
    /// `error` (none for a clean end).
    Finish(Option<String>),
}

/// What the driver should read from the control connection next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 37 bytes of cookie.
    Cookie,
    /// A length-prefixed parameters document.
    Params,
    /// Single state bytes.
    StateByte,
    /// A length-prefixed results document.
    Results,
    /// Nothing (preparing, or finished).
    Nothing,
}
