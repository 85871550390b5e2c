//! What most likely capped a test, as a value small enough to keep with
//! every test of the history (one byte, [`LimitedBy::code`]). The rules
//! that decide it are the verdict's (`store::verdict`); the words a person
//! reads are the headline's.

use serde::Serialize;

/// What most likely capped a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitedBy {
    /// The client's `-b` was reached.
    BitrateTarget,
    /// The server's CPU was saturated.
    ServerCpu,
    /// The Pi's firmware throttled, or the CPU reached its temperature limit.
    PiThrottled,
    /// The client's TCP receive window held the server's sending back.
    ReceiveWindow,
    /// The server's TCP send buffer held its sending back.
    SendBuffer,
    /// Retransmissions or loss, with none of the above.
    Network,
    /// Nothing recorded explains the rate.
    Unknown,
}

/// Every kind, in the order of their codes (1 up; 0 is "not judged").
const ALL: [LimitedBy; 7] = [
    LimitedBy::BitrateTarget,
    LimitedBy::ServerCpu,
    LimitedBy::PiThrottled,
    LimitedBy::ReceiveWindow,
    LimitedBy::SendBuffer,
    LimitedBy::Network,
    LimitedBy::Unknown,
];

impl LimitedBy {
    /// The kind as one byte for keeping: 1 and up (0 stands for none).
    pub fn code(limit: Option<LimitedBy>) -> u8 {
        limit
            .and_then(|l| ALL.iter().position(|&k| k == l))
            .and_then(|i| u8::try_from(i + 1).ok())
            .unwrap_or(0)
    }

    /// The kind a [`LimitedBy::code`] stands for; `None` for 0 or an
    /// unknown code.
    pub fn from_code(code: u8) -> Option<LimitedBy> {
        ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back() {
        assert_eq!(LimitedBy::code(None), 0);
        assert_eq!(LimitedBy::from_code(0), None);
        assert_eq!(LimitedBy::from_code(200), None);
        for k in ALL {
            let code = LimitedBy::code(Some(k));
            assert!(code > 0);
            assert_eq!(LimitedBy::from_code(code), Some(k));
        }
    }
}
