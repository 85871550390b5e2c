//! Bytes on the control connection: the cookie, state bytes, length-prefixed
//! JSON and the `SERVER_ERROR` payload.

use thiserror::Error;

/// Length of a cookie on the wire: 36 characters and a NUL.
pub const COOKIE_LEN: usize = 37;

/// Longest parameters document accepted (stock 3.18+: 8 KiB).
pub const MAX_PARAMS_LEN: usize = 8 * 1024;

/// Longest client results document accepted. Results carry about 100 bytes
/// per stream and interval-free summaries, so this is generous.
pub const MAX_RESULTS_LEN: usize = 512 * 1024;

/// The 37 bytes a client sends first on its control and TCP data connections.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cookie(pub [u8; COOKIE_LEN]);

/// The 32 characters a client's cookie is drawn from.
const COOKIE_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

impl Cookie {
    /// A client's cookie from 36 random bytes: each mapped into the
    /// alphabet stock clients use, then the NUL.
    pub fn from_random(random: [u8; COOKIE_LEN - 1]) -> Cookie {
        let mut c = [0u8; COOKIE_LEN];
        for (out, r) in c.iter_mut().zip(random) {
            *out = COOKIE_ALPHABET[usize::from(r % 32)];
        }
        Cookie(c)
    }

    /// The cookie as text for the log: the bytes before the first NUL (at most
    /// 36), lossily decoded.
    pub fn text(&self) -> String {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(COOKIE_LEN - 1);
        String::from_utf8_lossy(&self.0[..end.min(COOKIE_LEN - 1)]).into_owned()
    }
}

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cookie({:?})", self.text())
    }
}

/// A control-channel state byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// S→C: all streams are connected.
    TestStart,
    /// S→C: start moving data.
    TestRunning,
    /// C→S: the client declares the test over.
    TestEnd,
    /// S→C: send your parameters.
    ParamExchange,
    /// S→C: parameters accepted, open the data streams.
    CreateStreams,
    /// S→C: the server is shutting down.
    ServerTerminate,
    /// C→S: the client was interrupted.
    ClientTerminate,
    /// S→C: start of the results exchange.
    ExchangeResults,
    /// S→C: results exchanged, print them.
    DisplayResults,
    /// Internal idle state; never sent.
    IperfStart,
    /// C→S: the client is finished.
    IperfDone,
    /// S→C: busy, or a data connection with a wrong cookie.
    AccessDenied,
    /// S→C: followed by two big-endian i32s (error code, errno).
    ServerError,
}

impl State {
    /// The byte on the wire.
    pub fn byte(self) -> u8 {
        let v: i8 = match self {
            State::TestStart => 1,
            State::TestRunning => 2,
            State::TestEnd => 4,
            State::ParamExchange => 9,
            State::CreateStreams => 10,
            State::ServerTerminate => 11,
            State::ClientTerminate => 12,
            State::ExchangeResults => 13,
            State::DisplayResults => 14,
            State::IperfStart => 15,
            State::IperfDone => 16,
            State::AccessDenied => -1,
            State::ServerError => -2,
        };
        v as u8
    }
}

/// A byte that is no known state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unknown control message {0}")]
pub struct UnknownState(pub i8);

impl TryFrom<u8> for State {
    type Error = UnknownState;
    fn try_from(b: u8) -> Result<State, UnknownState> {
        Ok(match b as i8 {
            1 => State::TestStart,
            2 => State::TestRunning,
            4 => State::TestEnd,
            9 => State::ParamExchange,
            10 => State::CreateStreams,
            11 => State::ServerTerminate,
            12 => State::ClientTerminate,
            13 => State::ExchangeResults,
            14 => State::DisplayResults,
            15 => State::IperfStart,
            16 => State::IperfDone,
            -1 => State::AccessDenied,
            -2 => State::ServerError,
            other => return Err(UnknownState(other)),
        })
    }
}

/// Why a length prefix was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The length prefix was zero.
    #[error("empty message")]
    Empty,
    /// The length prefix exceeded the limit for this document.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Announced length.
        len: u32,
        /// The limit.
        max: usize,
    },
}

/// Checks a 4-byte big-endian length prefix against `max` before the body is
/// awaited; returns the body length.
pub fn frame_len(prefix: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(FrameError::TooLong { len, max }),
    }
}

/// Incremental decoder of one length-prefixed message: feed bytes as they
/// arrive; "need more" is `Ok(None)`.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = frame_len([prefix[0], prefix[1], prefix[2], prefix[3]], max)?;
    match buf.get(4..4 + len) {
        Some(body) => Ok(Some((body, 4 + len))),
        None => Ok(None),
    }
}

/// Length-prefixes a JSON document for sending.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("documents we send are far below 4 GiB");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The 9 bytes of a `SERVER_ERROR`: the state byte, the iperf3 error code and
/// the OS errno, both big-endian i32.
pub fn server_error(code: i32, errno: i32) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = State::ServerError.byte();
    out[1..5].copy_from_slice(&code.to_be_bytes());
    out[5..9].copy_from_slice(&errno.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_bytes_round_trip() {
        for b in 0..=255u8 {
            if let Ok(s) = State::try_from(b) {
                assert_eq!(s.byte(), b);
            }
        }
        assert_eq!(State::AccessDenied.byte(), 0xff);
        assert_eq!(State::try_from(0xfe), Ok(State::ServerError));
        assert_eq!(State::try_from(3), Err(UnknownState(3)));
        assert_eq!(State::try_from(0x80), Err(UnknownState(-128)));
    }

    #[test]
    fn a_client_cookie_is_36_alphabet_characters_and_a_nul() {
        let c = Cookie::from_random(std::array::from_fn(|i| (i * 7) as u8));
        assert_eq!(c.0[COOKIE_LEN - 1], 0);
        assert_eq!(c.text().len(), 36);
        assert!(c.text().bytes().all(|b| COOKIE_ALPHABET.contains(&b)));
        assert_eq!(&c.text()[..5], "ahov4");
    }

    #[test]
    fn frames() {
        assert_eq!(decode_frame(&[0, 0], 10), Ok(None));
        assert_eq!(decode_frame(&[0, 0, 0, 2, b'{'], 10), Ok(None));
        assert_eq!(
            decode_frame(&[0, 0, 0, 2, b'{', b'}', 9], 10),
            Ok(Some((&b"{}"[..], 6)))
        );
        assert_eq!(decode_frame(&[0, 0, 0, 0], 10), Err(FrameError::Empty));
        assert_eq!(
            decode_frame(&[0, 0, 0, 11], 10),
            Err(FrameError::TooLong { len: 11, max: 10 })
        );
        assert!(frame_len([0xff, 0xff, 0xff, 0xff], MAX_PARAMS_LEN).is_err());
        assert_eq!(encode_frame(b"{}"), vec![0, 0, 0, 2, b'{', b'}']);
    }

    #[test]
    fn server_error_layout() {
        assert_eq!(server_error(141, 0), [0xfe, 0, 0, 0, 0x8d, 0, 0, 0, 0]);
        assert_eq!(server_error(-1, 2)[1..5], [0xff; 4]);
    }

    #[test]
    fn cookie_text() {
        let mut raw = [0u8; COOKIE_LEN];
        raw[..36].copy_from_slice(b"twih724ozjiocb36udejdtl44tyg5fiulvjh");
        assert_eq!(Cookie(raw).text(), "twih724ozjiocb36udejdtl44tyg5fiulvjh");
        let junk = Cookie([b'A'; COOKIE_LEN]);
        assert_eq!(junk.text().len(), 36);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::testing::config;
    use proptest::prelude::*;

    /// Bytes that often start with a plausible length prefix.
    fn framed_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            (0u32..80, proptest::collection::vec(any::<u8>(), 0..96)).prop_map(|(len, body)| {
                let mut v = len.to_be_bytes().to_vec();
                v.extend(body);
                v
            }),
        ]
    }

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn decode_frame_never_panics_and_respects_the_limit(
            buf in framed_bytes(),
            max in 0usize..100,
        ) {
            match decode_frame(&buf, max) {
                Ok(Some((body, used))) => {
                    prop_assert!(!body.is_empty());
                    prop_assert!(body.len() <= max);
                    prop_assert_eq!(used, 4 + body.len());
                    prop_assert!(used <= buf.len());
                    prop_assert_eq!(&buf[4..used], body);
                    let announced = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    prop_assert_eq!(announced as usize, body.len());
                }
                Ok(None) => {
                    // Only ever "need more" while the message is incomplete
                    // and within the limit.
                    if buf.len() >= 4 {
                        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                        prop_assert!(len >= 1 && len <= max && buf.len() < 4 + len);
                    }
                }
                Err(FrameError::Empty) => prop_assert_eq!(&buf[..4], &[0, 0, 0, 0]),
                Err(FrameError::TooLong { len, max: m }) => {
                    prop_assert_eq!(m, max);
                    prop_assert!(len as usize > max);
                }
            }
        }

        /// Feeding a message a piece at a time gives "need more" until the
        /// decoder has what it needs, then exactly what feeding it whole gives.
        #[test]
        fn incremental_feeding_equals_whole_feeding(
            buf in framed_bytes(),
            max in 0usize..100,
        ) {
            let whole = decode_frame(&buf, max);
            let mut decided = false;
            for k in 0..=buf.len() {
                let part = decode_frame(&buf[..k], max);
                if decided {
                    prop_assert_eq!(part, whole);
                } else if part != Ok(None) {
                    prop_assert_eq!(part, whole);
                    decided = true;
                }
            }
            prop_assert_eq!(decided, whole != Ok(None));
        }

        #[test]
        fn encoded_frames_decode_to_their_body(
            body in proptest::collection::vec(any::<u8>(), 1..200),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut framed = encode_frame(&body);
            let used = framed.len();
            framed.extend(&tail);
            prop_assert_eq!(
                decode_frame(&framed, MAX_PARAMS_LEN),
                Ok(Some((&body[..], used)))
            );
            prop_assert_eq!(
                decode_frame(&framed, body.len() - 1),
                Err(FrameError::TooLong { len: body.len() as u32, max: body.len() - 1 })
            );
        }

        #[test]
        fn state_bytes_never_panic(b in any::<u8>()) {
            if let Ok(s) = State::try_from(b) {
                prop_assert_eq!(s.byte(), b);
            }
        }
    }
}
