//! A result kept small: the fixed-size [`Record`] the history holds per
//! test (about 100 bytes), the [`Interner`] its texts live in, and the way
//! back to a [`TestResult`], built only when one is asked for.
//!
//! Rates and other measured figures are kept as `f32` (seven significant
//! digits, far finer than any network measurement) and shown as the
//! shortest decimal that reads back as the same `f32`, so a result reads
//! the same every time it is built. No I/O here.

use std::collections::HashMap;
use std::sync::Arc;

use super::result::TestResult;

/// The interned text of "no value".
pub const NONE: u32 = 0;

/// Texts stored once however many results carry them (names, titles,
/// clients, errors, protocols, throttling flags); `0` is "no value".
#[derive(Debug, Clone)]
pub struct Interner {
    texts: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            texts: vec![Arc::from("")],
            index: HashMap::new(),
        }
    }
}

impl Interner {
    /// The number of `text`, adding it if new.
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(&n) = self.index.get(text) {
            return n;
        }
        // More than four billion distinct texts cannot be held anyway.
        let n = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        let text: Arc<str> = Arc::from(text);
        self.texts.push(text.clone());
        self.index.insert(text, n);
        n
    }

    /// The number of `text` if it is interned.
    pub fn find(&self, text: &str) -> Option<u32> {
        self.index.get(text).copied()
    }

    /// The text of `n` (`None` for [`NONE`] or an unknown number).
    pub fn get(&self, n: u32) -> Option<&str> {
        if n == NONE {
            return None;
        }
        self.texts.get(n as usize).map(|t| &**t)
    }

    /// Every interned text with its number (not [`NONE`]).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        (1u32..).zip(self.texts.iter().skip(1).map(|t| &**t))
    }

    fn intern_opt(&mut self, text: Option<&str>) -> u32 {
        text.map_or(NONE, |t| self.intern(t))
    }
}

/// What separates throttling flags in their one interned text.
const FLAG_SEPARATOR: char = '\u{1f}';

/// Bit flags of a [`Record`].
mod bits {
    pub const REVERSE: u8 = 1;
    pub const BIDIR: u8 = 2;
    pub const OVERLAP_KNOWN: u8 = 4;
    pub const OVERLAPPED: u8 = 8;
    /// The client's address is IPv6 (not IPv4 or IPv4-mapped).
    pub const V6: u8 = 16;
    pub const RETRANSMITS_KNOWN: u8 = 32;
}

/// One test of the history, fixed size; texts are [`Interner`] numbers,
/// `NaN` is "no value" for the figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// Unix seconds the test started.
    pub timestamp: i64,
    /// Byte offset of the entry's `{` in its log file.
    pub offset: u64,
    /// Bytes the server sent.
    pub bytes_sent: u64,
    /// Bytes the server received.
    pub bytes_received: u64,
    /// Index of the log file in the store's file table ([`NO_FILE`]: not on disk).
    pub file: u32,
    /// `--extra-data`.
    pub name: u32,
    /// `--title`.
    pub title: u32,
    /// The client's address.
    pub client: u32,
    /// The entry's `error`.
    pub error: u32,
    /// `TCP`, `UDP`, `ndt7`.
    pub protocol: u32,
    /// Throttling flags seen, joined.
    pub throttled: u32,
    /// Retransmits (saturated), when [`bits::RETRANSMITS_KNOWN`].
    retransmits: u32,
    /// Parallel streams.
    pub streams: u32,
    duration: f32,
    /// What the server sent, bits/s.
    pub send_bps: f32,
    /// What the server received, bits/s.
    pub receive_bps: f32,
    jitter_ms: f32,
    lost_percent: f32,
    min_rtt_ms: f32,
    server_cpu_percent: f32,
    cpu_temp_c: f32,
    /// The iperf3 port.
    pub port: u16,
    flags: u8,
}

/// [`Record::file`] of a result whose entry did not reach a log.
pub const NO_FILE: u32 = u32::MAX;

/// `x` narrowed for keeping (`NaN` for none).
fn narrow(x: Option<f64>) -> f32 {
    // Rounding to the nearest f32 is the point here.
    #[allow(clippy::cast_possible_truncation)]
    x.map_or(f32::NAN, |x| x as f32)
}

/// `x` as the shortest decimal that reads back as the same `f32`.
pub fn widen(x: f32) -> Option<f64> {
    if x.is_nan() {
        return None;
    }
    // `Display` of an f32 is its shortest round-trip decimal.
    Some(x.to_string().parse().unwrap_or(f64::from(x)))
}

impl Record {
    /// `result` kept small, in file `file` at `offset`.
    pub fn new(result: &TestResult, file: u32, offset: u64, texts: &mut Interner) -> Record {
        let mut flags = 0;
        let mut set = |on: bool, bit: u8| {
            if on {
                flags |= bit;
            }
        };
        set(result.reverse, bits::REVERSE);
        set(result.bidir, bits::BIDIR);
        set(result.overlapped.is_some(), bits::OVERLAP_KNOWN);
        set(result.overlapped == Some(true), bits::OVERLAPPED);
        set(
            result.client.as_deref().is_some_and(|c| c.contains(':')),
            bits::V6,
        );
        set(result.retransmits.is_some(), bits::RETRANSMITS_KNOWN);
        let throttled = result.throttled.as_ref().map(|flags| {
            let joined: Vec<&str> = flags.iter().map(String::as_str).collect();
            joined.join(&FLAG_SEPARATOR.to_string())
        });
        Record {
            timestamp: result.timestamp,
            offset,
            bytes_sent: result.bytes_sent,
            bytes_received: result.bytes_received,
            file,
            name: texts.intern_opt(result.name.as_deref()),
            title: texts.intern_opt(result.title.as_deref()),
            client: texts.intern_opt(result.client.as_deref()),
            error: texts.intern_opt(result.error.as_deref()),
            protocol: texts.intern(&result.protocol),
            throttled: texts.intern_opt(throttled.as_deref()),
            retransmits: result
                .retransmits
                .map_or(0, |r| u32::try_from(r).unwrap_or(u32::MAX)),
            streams: result.streams,
            duration: narrow(Some(result.duration)),
            send_bps: narrow(result.send_bps),
            receive_bps: narrow(result.receive_bps),
            jitter_ms: narrow(result.jitter_ms),
            lost_percent: narrow(result.lost_percent),
            min_rtt_ms: narrow(result.min_rtt_ms),
            server_cpu_percent: narrow(result.server_cpu_percent),
            cpu_temp_c: narrow(result.cpu_temp_c),
            port: result.port,
            flags,
        }
    }

    /// Whether the client's address is IPv6.
    pub fn is_v6(&self) -> bool {
        self.flags & bits::V6 != 0
    }

    /// The result object, with `id` as its id.
    pub fn result(&self, id: String, texts: &Interner) -> TestResult {
        let text = |n| texts.get(n).map(str::to_string);
        let flag = |bit| self.flags & bit != 0;
        // A text may be interned empty (`Some("")`); only NONE is none.
        let some_text = |n| (n != NONE).then(|| texts.get(n).unwrap_or("").to_string());
        TestResult {
            id,
            port: self.port,
            timestamp: self.timestamp,
            name: some_text(self.name),
            title: some_text(self.title),
            client: some_text(self.client),
            protocol: text(self.protocol).unwrap_or_default(),
            duration: widen(self.duration).unwrap_or(0.0),
            streams: self.streams,
            reverse: flag(bits::REVERSE),
            bidir: flag(bits::BIDIR),
            send_bps: widen(self.send_bps),
            receive_bps: widen(self.receive_bps),
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            retransmits: flag(bits::RETRANSMITS_KNOWN).then_some(u64::from(self.retransmits)),
            jitter_ms: widen(self.jitter_ms),
            lost_percent: widen(self.lost_percent),
            min_rtt_ms: widen(self.min_rtt_ms),
            error: some_text(self.error),
            overlapped: flag(bits::OVERLAP_KNOWN).then_some(flag(bits::OVERLAPPED)),
            server_cpu_percent: widen(self.server_cpu_percent),
            cpu_temp_c: widen(self.cpu_temp_c),
            throttled: (self.throttled != NONE).then(|| {
                let joined = texts.get(self.throttled).unwrap_or("");
                if joined.is_empty() {
                    Vec::new()
                } else {
                    joined.split(FLAG_SEPARATOR).map(str::to_string).collect()
                }
            }),
        }
    }

    /// The record with its texts moved from `from` to `to` (compacting the
    /// texts after tests were dropped).
    pub fn reintern(mut self, from: &Interner, to: &mut Interner) -> Record {
        for n in [
            &mut self.name,
            &mut self.title,
            &mut self.client,
            &mut self.error,
            &mut self.protocol,
            &mut self.throttled,
        ] {
            if *n != NONE {
                *n = to.intern(from.get(*n).unwrap_or(""));
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::results::tests::result;

    #[test]
    fn a_record_is_about_a_hundred_bytes() {
        assert!(std::mem::size_of::<Record>() <= 104);
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let mut texts = Interner::default();
        let full = TestResult {
            id: "5201-1-0".into(),
            name: Some("alice".into()),
            title: Some(String::new()),
            client: Some("2001:db8::1".into()),
            error: Some("cut short".into()),
            reverse: true,
            bidir: true,
            send_bps: Some(941_234_567.0),
            retransmits: Some(3),
            jitter_ms: Some(0.25),
            lost_percent: Some(1.5),
            min_rtt_ms: Some(0.123),
            overlapped: Some(false),
            server_cpu_percent: Some(12.5),
            cpu_temp_c: Some(61.3),
            throttled: Some(vec!["under-voltage".into(), "throttled".into()]),
            duration: 10.000_123,
            ..result(5201, 1_700_000_000)
        };
        let record = Record::new(&full, 3, 77, &mut texts);
        assert!(record.is_v6());
        let back = record.result(full.id.clone(), &texts);
        assert_eq!(back.send_bps, Some(941_234_560.0));
        assert_eq!(back.duration, 10.000_123);
        assert_eq!(back.min_rtt_ms, Some(0.123));
        assert_eq!(back.cpu_temp_c, Some(61.3));
        assert_eq!(
            back,
            TestResult {
                send_bps: Some(941_234_560.0),
                ..full.clone()
            }
        );
        let empty = TestResult {
            throttled: Some(Vec::new()),
            ..result(5201, 1)
        };
        let record = Record::new(&empty, 0, 0, &mut texts);
        assert_eq!(record.result(String::new(), &texts), empty);
    }

    #[test]
    fn texts_are_stored_once() {
        let mut texts = Interner::default();
        let a = texts.intern("alice");
        assert_eq!(texts.intern("alice"), a);
        assert_ne!(texts.intern("bob"), a);
        assert_eq!(texts.find("bob"), Some(2));
        assert_eq!(texts.get(NONE), None);
        let mut compact = Interner::default();
        let record = Record::new(
            &TestResult {
                name: Some("bob".into()),
                ..result(5201, 1)
            },
            0,
            0,
            &mut texts,
        );
        let moved = record.reintern(&texts, &mut compact);
        assert_eq!(
            moved.result(String::new(), &compact).name.as_deref(),
            Some("bob")
        );
        assert_eq!(compact.iter().count(), 2);
    }
}
