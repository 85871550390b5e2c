//! The UDP datagram header and the receiver's loss/jitter arithmetic, as
//! stock iperf3 computes them: no sockets, no clock reads (times are given).

/// A point on the sender's or receiver's monotonic clock: whole seconds and
/// microseconds, as the header carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Stamp {
    /// Whole seconds (truncated to 32 bits on the wire).
    pub secs: u32,
    /// Microseconds, 0–999999.
    pub micros: u32,
}

impl Stamp {
    /// A stamp from a monotonic time in nanoseconds.
    pub fn from_nanos(nanos: u64) -> Stamp {
        Stamp {
            secs: (nanos / 1_000_000_000) as u32,
            micros: ((nanos % 1_000_000_000) / 1000) as u32,
        }
    }

    fn as_micros(self) -> i64 {
        i64::from(self.secs) * 1_000_000 + i64::from(self.micros)
    }
}

/// The bytes the client's hello datagram is answered with (`"6789"`).
pub const REPLY: [u8; 4] = *b"6789";

/// Header length with 32-bit sequence numbers.
pub const HEADER_LEN_32: usize = 12;
/// Header length with 64-bit sequence numbers.
pub const HEADER_LEN_64: usize = 16;

/// A decoded datagram header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sender's timestamp.
    pub sent: Stamp,
    /// The sequence number (starts at 1).
    pub seq: u64,
}

/// Decodes a datagram's header; `None` if the datagram is too short.
pub fn decode_header(datagram: &[u8], counters_64bit: bool) -> Option<Header> {
    let secs = u32::from_be_bytes(datagram.get(0..4)?.try_into().ok()?);
    let micros = u32::from_be_bytes(datagram.get(4..8)?.try_into().ok()?);
    let seq = if counters_64bit {
        u64::from_be_bytes(datagram.get(8..16)?.try_into().ok()?)
    } else {
        u64::from(u32::from_be_bytes(datagram.get(8..12)?.try_into().ok()?))
    };
    Some(Header {
        sent: Stamp { secs, micros },
        seq,
    })
}

/// Writes a header into the start of `datagram` (which must hold it).
pub fn encode_header(datagram: &mut [u8], header: Header, counters_64bit: bool) {
    datagram[0..4].copy_from_slice(&header.sent.secs.to_be_bytes());
    datagram[4..8].copy_from_slice(&header.sent.micros.to_be_bytes());
    if counters_64bit {
        datagram[8..16].copy_from_slice(&header.seq.to_be_bytes());
    } else {
        datagram[8..12].copy_from_slice(&(header.seq as u32).to_be_bytes());
    }
}

/// Per-stream receiver state: highest sequence, loss, reordering, jitter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receiver {
    /// Highest sequence number seen (stock reports it as `packets`).
    pub max_seq: u64,
    /// Datagrams lost (net of late arrivals).
    pub lost: u64,
    /// Datagrams that arrived late or twice.
    pub out_of_order: u64,
    /// Smoothed jitter, seconds (RFC 1889 style, gain 1/16).
    pub jitter: f64,
    prev_transit: Option<i64>,
}

impl Receiver {
    /// Accounts one datagram sent at `sent` (sender's clock) that arrived at
    /// `arrived` (ours).
    pub fn on_datagram(&mut self, header: Header, arrived: Stamp) {
        let seq = header.seq;
        if seq > self.max_seq {
            self.lost += seq - self.max_seq - 1;
            self.max_seq = seq;
        } else {
            self.out_of_order += 1;
            self.lost = self.lost.saturating_sub(1);
        }
        // The clocks of the two hosts differ by an unknown offset; the
        // absolute transit time removes it as long as its sign holds.
        let transit = (arrived.as_micros() - header.sent.as_micros()).abs();
        let prev = self.prev_transit.unwrap_or(transit);
        let d = (transit - prev).abs() as f64 / 1e6;
        self.prev_transit = Some(transit);
        self.jitter += (d - self.jitter) / 16.0;
    }

    /// Starts a new measurement (after the omit period): jitter from zero,
    /// the next datagram's transit as the first.
    pub fn restart_jitter(&mut self) {
        self.jitter = 0.0;
        self.prev_transit = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seq: u64, micros: u32) -> Header {
        Header {
            sent: Stamp { secs: 100, micros },
            seq,
        }
    }

    fn at(micros: u32) -> Stamp {
        Stamp { secs: 100, micros }
    }

    #[test]
    fn header_round_trip_and_capture() {
        let captured = [
            0x00, 0x00, 0x01, 0x6d, 0x00, 0x01, 0xaa, 0xb2, 0x00, 0x00, 0x00, 0x01, 0xad,
        ];
        let got = decode_header(&captured, false).unwrap();
        assert_eq!(
            got,
            Header {
                sent: Stamp {
                    secs: 365,
                    micros: 109_234
                },
                seq: 1
            }
        );
        let mut buf = [0u8; 16];
        let h64 = Header {
            sent: Stamp {
                secs: 0x1f3,
                micros: 0x0f068c,
            },
            seq: 1,
        };
        encode_header(&mut buf, h64, true);
        assert_eq!(
            buf,
            [0, 0, 1, 0xf3, 0, 0x0f, 0x06, 0x8c, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(decode_header(&buf, true), Some(h64));
        assert_eq!(decode_header(&buf[..11], false), None);
        assert_eq!(decode_header(&buf[..15], true), None);
    }

    #[test]
    fn in_order_no_loss() {
        let mut r = Receiver::default();
        for seq in 1..=10 {
            r.on_datagram(h(seq, seq as u32 * 100), at(seq as u32 * 100 + 50));
        }
        assert_eq!((r.max_seq, r.lost, r.out_of_order), (10, 0, 0));
        assert_eq!(r.jitter, 0.0, "constant transit, no jitter");
    }

    #[test]
    fn gaps_count_as_loss_and_late_ones_are_taken_back() {
        let mut r = Receiver::default();
        for seq in [1, 2, 5, 6] {
            r.on_datagram(h(seq, 0), at(0));
        }
        assert_eq!((r.max_seq, r.lost), (6, 2));
        r.on_datagram(h(3, 0), at(0));
        assert_eq!((r.lost, r.out_of_order), (1, 1));
        // A duplicate is also "out of order" and also takes one back (stock).
        r.on_datagram(h(3, 0), at(0));
        assert_eq!((r.lost, r.out_of_order), (0, 2));
        r.on_datagram(h(2, 0), at(0));
        assert_eq!(
            (r.lost, r.out_of_order),
            (0, 3),
            "loss never goes below zero"
        );
    }

    #[test]
    fn wrapped_32bit_counter_is_a_huge_gap() {
        let mut r = Receiver::default();
        r.on_datagram(h(u64::from(u32::MAX), 0), at(0));
        r.on_datagram(h(0, 0), at(0));
        assert_eq!(r.out_of_order, 1);
    }

    #[test]
    fn jitter_follows_rfc1889() {
        let mut r = Receiver::default();
        r.on_datagram(h(1, 0), at(1000));
        assert_eq!(r.jitter, 0.0, "first datagram initialises the transit");
        r.on_datagram(h(2, 1000), at(2160));
        // transit 1160 vs 1000: d = 160 µs; jitter = 160e-6 / 16
        assert!((r.jitter - 10e-6).abs() < 1e-12, "{}", r.jitter);
        r.on_datagram(h(3, 2000), at(3160));
        assert!((r.jitter - (10e-6 + (0.0 - 10e-6) / 16.0)).abs() < 1e-12);
        r.restart_jitter();
        assert_eq!(r.jitter, 0.0);
        r.on_datagram(h(4, 3000), at(9000));
        assert_eq!(r.jitter, 0.0, "first datagram after a restart");
    }

    #[test]
    fn clock_offset_sign_does_not_matter() {
        let mut a = Receiver::default();
        let mut b = Receiver::default();
        for (i, extra) in [0u32, 300, 100, 700].iter().enumerate() {
            let sent = 10_000 * i as u32;
            a.on_datagram(
                h(i as u64 + 1, sent),
                Stamp {
                    secs: 50,
                    micros: sent + extra,
                },
            );
            b.on_datagram(
                h(i as u64 + 1, sent),
                Stamp {
                    secs: 150,
                    micros: sent + extra,
                },
            );
        }
        assert!((a.jitter - b.jitter).abs() < 1e-9);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::testing::config;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config(256))]

        /// Whatever datagrams a client sends (any header, any size), the
        /// receiver's arithmetic never panics and its counts stay sane.
        #[test]
        fn any_datagrams_are_accounted(
            datagrams in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..20), any::<u32>(), any::<u32>()),
                0..50,
            ),
            wide in any::<bool>(),
        ) {
            let mut rx = Receiver::default();
            for (bytes, secs, micros) in datagrams {
                if let Some(h) = decode_header(&bytes, wide) {
                    rx.on_datagram(h, Stamp { secs, micros });
                    prop_assert!(rx.lost <= rx.max_seq);
                    prop_assert!(rx.jitter.is_finite() && rx.jitter >= 0.0);
                }
            }
        }
    }
}
