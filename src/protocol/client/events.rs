//! What flows between a probe's driver and the client machine: the events
//! it is fed (with the stream counters of a tick), the actions it answers
//! with, where the test stands, and why a test failed.

use thiserror::Error;

use crate::protocol::errors::ErrorCode;
use crate::protocol::results_exchange::PeerResults;
use crate::protocol::wire::State;

/// What the driver read off the data streams at a tick: totals since the
/// streams started (the omit period included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes sent on every sending stream.
    pub sent: u64,
    /// Bytes received on every receiving stream.
    pub received: u64,
    /// Whole blocks sent.
    pub sent_blocks: u64,
    /// Reads (TCP) or datagrams (UDP) received.
    pub received_blocks: u64,
}

impl Progress {
    /// What moved since `base` (an earlier reading).
    pub fn since(self, base: Progress) -> Progress {
        Progress {
            sent: self.sent.saturating_sub(base.sent),
            received: self.received.saturating_sub(base.received),
            sent_blocks: self.sent_blocks.saturating_sub(base.sent_blocks),
            received_blocks: self.received_blocks.saturating_sub(base.received_blocks),
        }
    }
}

/// Where a client's test stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The control connection is being opened.
    Connecting,
    /// The cookie was sent; waiting for `PARAM_EXCHANGE`.
    Cookie,
    /// The parameters were sent; waiting for `CREATE_STREAMS`.
    Params,
    /// The data streams are being connected.
    Streams,
    /// Every stream is connected; waiting for `TEST_START`/`TEST_RUNNING`.
    Starting,
    /// Data flows until the test's end condition.
    Running,
    /// `TEST_END` was sent; waiting for `EXCHANGE_RESULTS`.
    Ending,
    /// Our results were sent; waiting for the server's.
    Results,
    /// The server's results arrived; waiting for `DISPLAY_RESULTS`.
    Display,
    /// Over; the outcome has been given.
    Finished,
}

/// What the driver tells the client machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The control connection is open (the cookie is sent next).
    Connected,
    /// A state byte arrived from the server.
    StateByte(u8),
    /// The 8 bytes after a `SERVER_ERROR` state byte arrived.
    ErrorPayload([u8; 8]),
    /// One more data stream is connected (TCP: its cookie sent; UDP: the
    /// server answered its hello).
    StreamConnected,
    /// The data streams started (after [`Action::StartTest`]): intervals,
    /// the omit period and the duration count from now.
    Started,
    /// The deadline from [`crate::protocol::client::Client::deadline`]
    /// passed, with the stream counters read now.
    Tick(Progress),
    /// The first bytes of the server's results document arrived.
    ReadStarted,
    /// The server's results document arrived (its body).
    ServerResults(Vec<u8>),
    /// Reading the server's results failed (an oversized or empty length
    /// prefix, EOF inside the document, an OS error).
    ReadFailed(String),
    /// The control connection reached EOF (or a write to it failed).
    Eof,
    /// A failure on our side (a data stream could not connect, a socket
    /// option failed), with its text.
    Fault(String),
    /// The test is to stop now (the box shuts down); the text says why.
    Cancel(&'static str),
}

/// What the client machine asks the driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send the test's cookie on the control connection.
    SendCookie,
    /// Send this parameters document (length-prefixed).
    SendParams(Vec<u8>),
    /// Send one state byte.
    Send(State),
    /// Connect this many data streams, one after the other, reporting
    /// [`Event::StreamConnected`] for each (or [`Event::Fault`]).
    ConnectStreams(u32),
    /// Start moving data and the CPU clock, then report [`Event::Started`].
    StartTest,
    /// Take an interval sample.
    SampleInterval,
    /// The omit period is over: the last sample becomes every stream's
    /// baseline and receivers restart their jitter measurement.
    EndOmit,
    /// The test is over: stop sending, take the final sample.
    EndTest,
    /// Send our results document (length-prefixed).
    SendResults,
    /// The server's results passed the checks; keep them for the record.
    KeepServerResults(PeerResults),
    /// Close the data streams.
    CloseStreams,
    /// The test is over: close the control connection and give the
    /// outcome (none for a clean end).
    Finish(Option<Failure>),
}

/// What the driver should read from the control connection next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Single state bytes.
    StateByte,
    /// The 8 bytes of a `SERVER_ERROR` (code and errno, big-endian).
    ErrorPayload,
    /// A length-prefixed results document.
    Results,
    /// Nothing (connecting, connecting streams, or finished).
    Nothing,
}

/// Why a client's test failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Failure {
    /// The server answered `ACCESS_DENIED`: it runs another test.
    #[error("the server is busy running a test. try again later")]
    Busy,
    /// The server sent `SERVER_ERROR` with this code and errno.
    #[error("the server reported error {}: {}", .code.0, .code.text())]
    Server {
        /// The iperf3 error code.
        code: ErrorCode,
        /// The server's OS errno (0 when none).
        errno: i32,
    },
    /// The server sent `SERVER_TERMINATE`: it is shutting down.
    #[error("the server has terminated")]
    ServerTerminated,
    /// The control connection closed before the test was over.
    #[error("the server has unexpectedly closed the connection")]
    Closed,
    /// The server did not answer in time; the text says what we waited for.
    #[error("no answer from the server: {0}")]
    Timeout(&'static str),
    /// The server sent something out of turn, or results we could not read.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Our side failed (connecting a stream, setting a socket option).
    #[error("{0}")]
    Local(String),
    /// The test was stopped on our side; the text says why.
    #[error("{0}")]
    Cancelled(&'static str),
}

impl Failure {
    /// Whether the server refused only because it was busy: worth a retry
    /// later.
    pub fn is_busy(&self) -> bool {
        matches!(self, Failure::Busy)
    }
}
