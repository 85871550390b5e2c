//! iperf3 error codes a server sends in `SERVER_ERROR`, with the texts stock
//! iperf3 shows for them (its log writes `error - <text>`).

/// An iperf3 error code (`i_errno`). Values are stable across versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub i32);

impl ErrorCode {
    /// Test duration out of range.
    pub const DURATION: ErrorCode = ErrorCode(5);
    /// Too many parallel streams.
    pub const NUM_STREAMS: ErrorCode = ErrorCode(6);
    /// Block size out of range.
    pub const BLOCK_SIZE: ErrorCode = ErrorCode(7);
    /// Socket buffer size out of range.
    pub const BUF_SIZE: ErrorCode = ErrorCode(8);
    /// MSS out of range.
    pub const MSS: ErrorCode = ErrorCode(10);
    /// Omit out of range.
    pub const OMIT: ErrorCode = ErrorCode(12);
    /// Burst out of range.
    pub const BURST: ErrorCode = ErrorCode(15);
    /// SCTP asked for; we have none.
    pub const NO_SCTP: ErrorCode = ErrorCode(18);
    /// TOS out of range.
    pub const BAD_TOS: ErrorCode = ErrorCode(21);
    /// `reverse` and `bidirectional` together.
    pub const REVERSE_BIDIR: ErrorCode = ErrorCode(25);
    /// Requested rate above the server's limit.
    pub const TOTAL_RATE: ErrorCode = ErrorCode(27);
    /// Requested duration above the server's maximum.
    pub const MAX_DURATION: ErrorCode = ErrorCode(37);
    /// The cookie did not arrive.
    pub const RECV_COOKIE: ErrorCode = ErrorCode(106);
    /// The control socket closed unexpectedly.
    pub const CTRL_CLOSE: ErrorCode = ErrorCode(109);
    /// An unknown state byte from the client.
    pub const MESSAGE: ErrorCode = ErrorCode(110);
    /// Parameters missing, malformed or too long.
    pub const RECV_PARAMS: ErrorCode = ErrorCode(114);
    /// Client results missing or malformed.
    pub const RECV_RESULTS: ErrorCode = ErrorCode(117);
    /// A socket buffer size could not be set.
    pub const SET_BUF: ErrorCode = ErrorCode(124);
    /// Unsupported protocol.
    pub const PROTOCOL: ErrorCode = ErrorCode(131);
    /// The congestion algorithm could not be set.
    pub const SET_CONGESTION: ErrorCode = ErrorCode(134);
    /// The kernel granted a smaller window than asked.
    pub const SET_BUF2: ErrorCode = ErrorCode(141);
    /// Authentication failed.
    pub const AUTH_TEST: ErrorCode = ErrorCode(142);
    /// No data received for the receive timeout.
    pub const NO_MSG: ErrorCode = ErrorCode(144);
    /// The hard duration limit of a timed test passed.
    pub const DURATION_EXPIRED: ErrorCode = ErrorCode(160);
    /// The data listener could not be prepared.
    pub const STREAM_LISTEN: ErrorCode = ErrorCode(202);
    /// A data stream could not be accepted (or did not arrive in time).
    pub const STREAM_ACCEPT: ErrorCode = ErrorCode(204);
    /// Reading a data stream failed.
    pub const STREAM_READ: ErrorCode = ErrorCode(206);
    /// Writing a data stream failed.
    pub const STREAM_WRITE: ErrorCode = ErrorCode(207);
    /// Client results named an unknown stream id.
    pub const STREAM_ID: ErrorCode = ErrorCode(208);

    /// The text stock iperf3 prints for this code.
    pub fn text(self) -> &'static str {
        match self.0 {
            5 => "test duration valid values are 0 to 86400 seconds",
            6 => "number of parallel streams too large (maximum = 128)",
            7 => "block size too large (maximum = 1048576 bytes)",
            8 => "socket buffer size too large (maximum = 536870912 bytes)",
            10 => "TCP MSS too large (maximum = 32767 bytes)",
            12 => "bogus value for --omit (maximum = 600 seconds)",
            15 => "invalid burst count (maximum = 1000)",
            18 => "no SCTP support available",
            21 => "bad TOS value (must be between 0 and 255 inclusive)",
            25 => "cannot be both reverse and bidirectional",
            27 => "total required bandwidth is larger than server limit",
            37 => "client's requested duration exceeds the server's maximum permitted limit",
            106 => "unable to receive cookie at server",
            109 => "control socket has closed unexpectedly",
            110 => "received an unknown control message (ensure other side is iperf3 and not iperf)",
            114 => "unable to receive parameters from client",
            117 => "unable to receive results",
            124 => "unable to set socket buffer size",
            131 => "protocol does not exist",
            134 => "unable to set TCP_CONGESTION: Supplied congestion control algorithm not supported on this host",
            141 => "socket buffer size not set correctly",
            142 => "test authorization failed",
            144 => "idle timeout for receiving data",
            160 => "server test duration expired",
            202 => "unable to start stream listener",
            204 => "unable to accept stream connection",
            206 => "unable to read from stream socket",
            207 => "unable to write to stream socket",
            208 => "stream has an invalid id",
            _ => "unknown error",
        }
    }

    /// Whether stock iperf3 appends `: <OS error text>` to this code's text.
    pub fn carries_os_error(self) -> bool {
        matches!(self.0, 106 | 114 | 117 | 124 | 202 | 204 | 206 | 207)
    }

    /// The log's `error` value for this code and OS errno, as stock writes it:
    /// `error - <text>`, plus `: <strerror>` (empty for errno 0) where the
    /// code carries an OS error.
    pub fn log_text(self, os_error: Option<&str>) -> String {
        if self.carries_os_error() {
            format!("error - {}: {}", self.text(), os_error.unwrap_or(""))
        } else {
            format!("error - {}", self.text())
        }
    }
}

/// The log's `error` when the client sent `CLIENT_TERMINATE`.
pub const CLIENT_TERMINATED: &str = "the client has terminated";
/// The log's `error` when the control connection hit EOF mid-test.
pub const CLIENT_CLOSED: &str = "the client has unexpectedly closed the connection";
/// Why an authenticated test was turned away: the port had no room.
pub const SERVER_BUSY: &str = "the server is busy running a test";
/// The log's `error` when the server was stopped by SIGTERM.
pub const SERVER_TERMINATED_TERM: &str =
    "interrupt - the server has terminated by signal Terminated(15)";
/// The log's `error` when the server was stopped by SIGINT.
pub const SERVER_TERMINATED_INT: &str =
    "interrupt - the server has terminated by signal Interrupt(2)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_texts_match_stock() {
        assert_eq!(
            ErrorCode::RECV_COOKIE.log_text(None),
            "error - unable to receive cookie at server: "
        );
        assert_eq!(
            ErrorCode::SET_BUF2.log_text(Some("ignored")),
            "error - socket buffer size not set correctly"
        );
        assert_eq!(
            ErrorCode::RECV_PARAMS.log_text(Some("Bad file descriptor")),
            "error - unable to receive parameters from client: Bad file descriptor"
        );
        assert_eq!(ErrorCode(9999).text(), "unknown error");
    }
}
