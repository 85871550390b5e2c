//! A result kept small: the fixed-size [`Record`] the history holds per
//! test (about 110 bytes), the [`Interner`] its texts live in, and the way
//! back to a [`TestResult`], built only when one is asked for.
//!
//! Rates and other measured figures are kept as `f32` (seven significant
//! digits, far finer than any network measurement) and shown as the
//! shortest decimal that reads back as the same `f32`, so a result reads
//! the same every time it is built. No I/O here.

use std::collections::HashMap;
use std::sync::Arc;

use crate::analysis::headline::headline;
use crate::analysis::limit::LimitedBy;
use crate::analysis::test_result::{Latency, TestResult};

/// The interned text of "no value".
pub const NONE: u32 = 0;

/// Texts stored once however many results carry them; `0` is "no value".
/// Two tables: words (names, titles, clients, errors), numbered `u32`, and
/// tags (protocols, throttling flags: a handful of distinct texts),
/// numbered `u16` to keep a [`Record`] small.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    words: Table,
    tags: Table,
}

/// One numbered table of texts; entry 0 is "no value".
#[derive(Debug, Clone)]
struct Table {
    texts: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            texts: vec![Arc::from("")],
            index: HashMap::new(),
        }
    }
}

impl Table {
    /// The number of `text`, adding it if new and the table has fewer
    /// than `limit` entries ([`NONE`] when full).
    fn intern(&mut self, text: &str, limit: usize) -> u32 {
        if let Some(&n) = self.index.get(text) {
            return n;
        }
        let Some(n) = u32::try_from(self.texts.len())
            .ok()
            .filter(|_| self.texts.len() < limit)
        else {
            return NONE;
        };
        let text: Arc<str> = Arc::from(text);
        self.texts.push(text.clone());
        self.index.insert(text, n);
        n
    }

    fn get(&self, n: u32) -> Option<&str> {
        if n == NONE {
            return None;
        }
        self.texts.get(n as usize).map(|t| &**t)
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        (1u32..).zip(self.texts.iter().skip(1).map(|t| &**t))
    }
}

/// The number of tag texts a store holds: a 65,536th distinct protocol or
/// set of throttling flags (only a crafted log has them) is kept as no
/// value.
const TAG_LIMIT: usize = 1 << 16;

impl Interner {
    /// The number of the word `text`, adding it if new.
    pub fn intern(&mut self, text: &str) -> u32 {
        // More than four billion distinct texts cannot be held anyway.
        self.words.intern(text, usize::MAX)
    }

    /// The number of the word `text` if it is interned.
    pub fn find(&self, text: &str) -> Option<u32> {
        self.words.index.get(text).copied()
    }

    /// The word `n` (`None` for [`NONE`] or an unknown number).
    pub fn get(&self, n: u32) -> Option<&str> {
        self.words.get(n)
    }

    /// Every interned word with its number (not [`NONE`]).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.words.iter()
    }

    /// The number of the tag `text` (a protocol, throttling flags), adding
    /// it if new.
    pub fn intern_tag(&mut self, text: &str) -> u16 {
        u16::try_from(self.tags.intern(text, TAG_LIMIT)).unwrap_or(NONE as u16)
    }

    /// The tag `n` (`None` for [`NONE`] or an unknown number).
    pub fn tag(&self, n: u16) -> Option<&str> {
        self.tags.get(u32::from(n))
    }

    /// Every interned tag with its number (not [`NONE`]).
    pub fn tags(&self) -> impl Iterator<Item = (u16, &str)> {
        self.tags
            .iter()
            .filter_map(|(n, t)| Some((u16::try_from(n).ok()?, t)))
    }

    /// Gives back the room kept for texts yet to come (after loading).
    pub fn shrink_to_fit(&mut self) {
        for table in [&mut self.words, &mut self.tags] {
            table.texts.shrink_to_fit();
            table.index.shrink_to_fit();
        }
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
    /// Throttling was read (its flags may be none).
    pub const THROTTLED_KNOWN: u8 = 64;
}

/// One test of the history, fixed size (104 bytes); texts are
/// [`Interner`] numbers, `NaN` is "no value" for the figures.
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
    /// `--title`; for ndt7 (which has no title) the speed-test run.
    pub title: u32,
    /// The client's address.
    pub client: u32,
    /// The entry's `error`.
    pub error: u32,
    /// Retransmits (saturated), when [`bits::RETRANSMITS_KNOWN`].
    retransmits: u32,
    duration: f32,
    /// What the server sent, bits/s.
    pub send_bps: f32,
    /// What the server received, bits/s.
    pub receive_bps: f32,
    jitter_ms: f32,
    lost_percent: f32,
    min_rtt_ms: f32,
    server_cpu_percent: f32,
    /// The client's `-b` for all its streams, bits/s.
    target_bps: f32,
    /// The link speed of the interface the test ran on, Mbit/s (0: not known).
    link_mbps: u32,
    /// `TCP`, `UDP`, `ndt7`: a tag number.
    pub protocol: u16,
    /// Throttling flags seen, joined: a tag number.
    pub throttled: u16,
    /// Parallel streams (saturated).
    pub streams: u16,
    /// Tenths of a degree ([`NO_TEMP`]: none). Our logs write the
    /// temperature to a tenth, so this keeps what they hold.
    cpu_temp_dc: i16,
    /// The iperf3 port.
    pub port: u16,
    /// Latency idle, down and up in tenths of a ms ([`NO_MS`]: none).
    latency_dms: [u16; 3],
    flags: u8,
    /// What capped the test: [`LimitedBy::code`].
    pub limit: u8,
}

/// [`Record::file`] of a result whose entry did not reach a log.
pub const NO_FILE: u32 = u32::MAX;

/// `Record::cpu_temp_dc` of no temperature.
const NO_TEMP: i16 = i16::MIN;

/// `Record::latency_dms` of no figure.
const NO_MS: u16 = u16::MAX;

/// The bytes of a record as [`Record::encode`] writes it.
pub const ENCODED_LEN: usize = 106;

/// A latency in tenths of a ms, saturated below [`NO_MS`] (6553.4 ms).
fn dms(ms: Option<f64>) -> u16 {
    match ms {
        Some(ms) if ms.is_finite() => {
            let t = (ms * 10.0).round().clamp(0.0, f64::from(NO_MS - 1));
            // In range after the clamp.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let t = t as u16;
            t
        }
        _ => NO_MS,
    }
}

/// The latency kept by [`dms`], in ms.
fn ms(dms: u16) -> Option<f64> {
    (dms != NO_MS).then(|| f64::from(dms) / 10.0)
}

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

/// A temperature in tenths of a degree, saturated ([`NO_TEMP`]: none).
fn tenths(celsius: Option<f64>) -> i16 {
    match celsius {
        Some(c) if !c.is_nan() => {
            let t = (c * 10.0)
                .round()
                .clamp(f64::from(NO_TEMP + 1), f64::from(i16::MAX));
            // In range after the clamp.
            #[allow(clippy::cast_possible_truncation)]
            let t = t as i16;
            t
        }
        _ => NO_TEMP,
    }
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
        set(result.throttled.is_some(), bits::THROTTLED_KNOWN);
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
            title: texts.intern_opt(result.title.as_deref().or(result.latency.run.as_deref())),
            // A probe's target in the client's place (the box was the
            // client): the history tells them apart by the log.
            client: texts.intern_opt(result.target.as_deref().or(result.client.as_deref())),
            error: texts.intern_opt(result.error.as_deref()),
            protocol: texts.intern_tag(&result.protocol),
            // No flags (`Some(empty)`) is the tag NONE with the bit set.
            throttled: throttled
                .as_deref()
                .filter(|t| !t.is_empty())
                .map_or(NONE as u16, |t| texts.intern_tag(t)),
            retransmits: result
                .retransmits
                .map_or(0, |r| u32::try_from(r).unwrap_or(u32::MAX)),
            streams: u16::try_from(result.streams).unwrap_or(u16::MAX),
            duration: narrow(Some(result.duration)),
            send_bps: narrow(result.send_bps),
            receive_bps: narrow(result.receive_bps),
            jitter_ms: narrow(result.jitter_ms),
            lost_percent: narrow(result.lost_percent),
            min_rtt_ms: narrow(result.min_rtt_ms),
            server_cpu_percent: narrow(result.server_cpu_percent),
            target_bps: narrow(result.target_bps),
            link_mbps: result
                .link_bps
                .filter(|l| l.is_finite() && *l >= 1e6)
                // Saturated: a link of four petabits is not yet built.
                .map_or(0, |l| (l / 1e6).round().min(f64::from(u32::MAX)) as u32),
            cpu_temp_dc: tenths(result.cpu_temp_c),
            port: result.port,
            latency_dms: [
                dms(result.latency.latency_idle_ms),
                dms(result.latency.latency_down_ms),
                dms(result.latency.latency_up_ms),
            ],
            flags,
            limit: LimitedBy::code(result.limited_by),
        }
    }

    /// The smallest RTT, ms (`NaN`: none).
    pub fn min_rtt(&self) -> f32 {
        self.min_rtt_ms
    }

    /// Latency idle, down and up, ms (`NaN`: none).
    pub fn latencies_ms(&self) -> [f32; 3] {
        // A tenth of a ms below 6553.5 ms: exact in an f32.
        self.latency_dms.map(|d| {
            if d == NO_MS {
                f32::NAN
            } else {
                f32::from(d) / 10.0
            }
        })
    }

    /// Whether the client paced the test to a `-b` target.
    pub fn paced(&self) -> bool {
        !self.target_bps.is_nan()
    }

    /// Joins the figures of `up`, the upload of the speed-test run this
    /// record (its download) starts: the duration to the upload's end,
    /// the smaller minimum RTT, the upload's latency, idle latency if this
    /// has none, overlap if either overlapped.
    pub fn join_figures(&mut self, up: &Record) {
        // Seconds between two subtests of a run: small.
        #[allow(clippy::cast_precision_loss)]
        let end = (up.timestamp - self.timestamp) as f32 + up.duration;
        self.duration = self.duration.max(end);
        self.min_rtt_ms = match (self.min_rtt_ms.is_nan(), up.min_rtt_ms.is_nan()) {
            (true, _) => up.min_rtt_ms,
            (false, true) => self.min_rtt_ms,
            _ => self.min_rtt_ms.min(up.min_rtt_ms),
        };
        self.latency_dms[2] = up.latency_dms[2];
        if self.latency_dms[0] == NO_MS {
            self.latency_dms[0] = up.latency_dms[0];
        }
        self.flags |= up.flags & (bits::OVERLAP_KNOWN | bits::OVERLAPPED);
    }

    /// Whether the client's address is IPv6.
    pub fn is_v6(&self) -> bool {
        self.flags & bits::V6 != 0
    }

    /// The result object, with `id` as its id.
    pub fn result(&self, id: String, texts: &Interner) -> TestResult {
        let flag = |bit| self.flags & bit != 0;
        // A text may be interned empty (`Some("")`); only NONE is none.
        let some_text = |n| (n != NONE).then(|| texts.get(n).unwrap_or("").to_string());
        let protocol = texts.tag(self.protocol).unwrap_or_default();
        let (title, run) = match protocol {
            crate::analysis::ndt7::PROTOCOL => (None, some_text(self.title)),
            _ => (some_text(self.title), None),
        };
        let mut result = TestResult {
            id,
            port: self.port,
            timestamp: self.timestamp,
            name: some_text(self.name),
            title,
            client: some_text(self.client),
            protocol: protocol.to_string(),
            duration: widen(self.duration).unwrap_or(0.0),
            streams: u32::from(self.streams),
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
            // Tenths divided by ten: the nearest double to the decimal.
            cpu_temp_c: (self.cpu_temp_dc != NO_TEMP).then(|| f64::from(self.cpu_temp_dc) / 10.0),
            throttled: flag(bits::THROTTLED_KNOWN).then(|| match texts.tag(self.throttled) {
                None | Some("") => Vec::new(),
                Some(joined) => joined.split(FLAG_SEPARATOR).map(str::to_string).collect(),
            }),
            kind: None,
            target: None,
            target_bps: widen(self.target_bps),
            link_bps: (self.link_mbps > 0).then(|| f64::from(self.link_mbps) * 1e6),
            limited_by: LimitedBy::from_code(self.limit),
            headline: String::new(),
            latency: Latency {
                latency_idle_ms: ms(self.latency_dms[0]),
                latency_down_ms: ms(self.latency_dms[1]),
                latency_up_ms: ms(self.latency_dms[2]),
                run,
                ..Latency::default()
            },
        }
        .graded();
        result.headline = headline(&result);
        result
    }

    /// The record's word numbers and tag numbers, to rewrite.
    fn numbers(&mut self) -> ([&mut u32; 4], [&mut u16; 2]) {
        (
            [
                &mut self.name,
                &mut self.title,
                &mut self.client,
                &mut self.error,
            ],
            [&mut self.protocol, &mut self.throttled],
        )
    }

    /// The record's word numbers (name, title or run, client, error)
    /// and tag numbers (protocol, throttling flags).
    pub fn text_numbers(&self) -> ([u32; 4], [u16; 2]) {
        (
            [self.name, self.title, self.client, self.error],
            [self.protocol, self.throttled],
        )
    }

    /// The record with its texts moved from `from` to `to` (compacting the
    /// texts after tests were dropped).
    pub fn reintern(mut self, from: &Interner, to: &mut Interner) -> Record {
        let (words, tags) = self.numbers();
        for n in words.into_iter().filter(|n| **n != NONE) {
            *n = to.intern(from.get(*n).unwrap_or(""));
        }
        for n in tags.into_iter().filter(|n| **n != 0) {
            *n = to.intern_tag(from.tag(*n).unwrap_or(""));
        }
        self
    }

    /// The record with its text numbers looked up in `words` and `tags`
    /// (old number → new) and its file set to `file`; `None` if a number
    /// is not in them. [`NONE`] stays [`NONE`].
    pub fn renumber(mut self, words: &[u32], tags: &[u16], file: u32) -> Option<Record> {
        let (word_numbers, tag_numbers) = self.numbers();
        for n in word_numbers {
            *n = *words.get(*n as usize)?;
        }
        for n in tag_numbers {
            *n = *tags.get(usize::from(*n))?;
        }
        self.file = file;
        Some(self)
    }

    /// Appends the record, all but its file, as [`ENCODED_LEN`] bytes
    /// (little-endian) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let timestamp = u64::from_le_bytes(self.timestamp.to_le_bytes());
        for x in [timestamp, self.offset, self.bytes_sent, self.bytes_received] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        let figures = [
            self.duration,
            self.send_bps,
            self.receive_bps,
            self.jitter_ms,
            self.lost_percent,
            self.min_rtt_ms,
            self.server_cpu_percent,
            self.target_bps,
        ]
        .map(f32::to_bits);
        let texts = [self.name, self.title, self.client, self.error];
        let counts = [self.retransmits, self.link_mbps];
        for x in texts.into_iter().chain(counts).chain(figures) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        let shorts = [self.protocol, self.throttled, self.streams, self.port];
        for x in shorts.into_iter().chain(self.latency_dms) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&self.cpu_temp_dc.to_le_bytes());
        out.push(self.flags);
        out.push(self.limit);
        debug_assert_eq!(out.len() - start, ENCODED_LEN);
    }

    /// A record from what [`Record::encode`] wrote, in no file
    /// ([`NO_FILE`]); `None` unless `bytes` is [`ENCODED_LEN`] long.
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        if bytes.len() != ENCODED_LEN {
            return None;
        }
        let mut at = 0;
        let mut take = |n: usize| {
            at += n;
            &bytes[at - n..at]
        };
        let mut u64_ = || u64::from_le_bytes(take(8).try_into().unwrap_or_default());
        let (timestamp, offset, bytes_sent, bytes_received) = (u64_(), u64_(), u64_(), u64_());
        let mut u32_ = || u32::from_le_bytes(take(4).try_into().unwrap_or_default());
        let (name, title, client, error, retransmits) = (u32_(), u32_(), u32_(), u32_(), u32_());
        let link_mbps = u32_();
        let mut f32s = [0f32; 8];
        for x in &mut f32s {
            *x = f32::from_bits(u32_());
        }
        let mut u16_ = || u16::from_le_bytes(take(2).try_into().unwrap_or_default());
        let (protocol, throttled, streams, port) = (u16_(), u16_(), u16_(), u16_());
        let latency_dms = [u16_(), u16_(), u16_()];
        let cpu_temp_dc = i16::from_le_bytes(take(2).try_into().unwrap_or_default());
        let flags = take(1)[0];
        let limit = take(1)[0];
        let [duration, send_bps, receive_bps, jitter_ms, lost_percent, min_rtt_ms, server_cpu_percent, target_bps] =
            f32s;
        Some(Record {
            timestamp: i64::from_le_bytes(timestamp.to_le_bytes()),
            offset,
            bytes_sent,
            bytes_received,
            file: NO_FILE,
            name,
            title,
            client,
            error,
            retransmits,
            duration,
            send_bps,
            receive_bps,
            jitter_ms,
            lost_percent,
            min_rtt_ms,
            server_cpu_percent,
            target_bps,
            link_mbps,
            protocol,
            throttled,
            streams,
            cpu_temp_dc,
            port,
            latency_dms,
            flags,
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::results_store::tests::result;

    /// `r` as it is shown: with its headline.
    fn shown(r: TestResult) -> TestResult {
        TestResult {
            headline: headline(&r),
            ..r
        }
    }

    #[test]
    fn a_record_is_about_a_hundred_bytes() {
        assert!(std::mem::size_of::<Record>() <= 112);
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
            target_bps: Some(5e7),
            link_bps: Some(1e9),
            limited_by: Some(LimitedBy::ReceiveWindow),
            latency: Latency {
                latency_idle_ms: Some(12.3),
                latency_down_ms: Some(187.4),
                latency_up_ms: Some(7000.0),
                ..Latency::default()
            },
            ..result(5201, 1_700_000_000)
        };
        let record = Record::new(&full, 3, 77, &mut texts);
        assert!(record.is_v6());
        let back = record.result(full.id.clone(), &texts);
        assert_eq!(back.send_bps, Some(941_234_560.0));
        assert_eq!(back.duration, 10.000_123);
        assert_eq!(back.min_rtt_ms, Some(0.123));
        assert_eq!(back.cpu_temp_c, Some(61.3));
        // Latency to a tenth of a ms, saturated at 6553.4 ms.
        assert_eq!(back.latency.latency_up_ms, Some(6553.4));
        assert_eq!(back.latency.grade, Some("F"));
        assert_eq!(
            back,
            shown(
                TestResult {
                    send_bps: Some(941_234_560.0),
                    latency: Latency {
                        latency_up_ms: Some(6553.4),
                        ..full.latency.clone()
                    },
                    ..full.clone()
                }
                .graded()
            )
        );
        // An ndt7 run keeps its run id where a title would be.
        let run = TestResult {
            protocol: "ndt7".into(),
            latency: Latency {
                run: Some("run-1".into()),
                ..Latency::default()
            },
            ..result(8080, 1)
        };
        let record = Record::new(&run, 0, 0, &mut texts);
        assert_eq!(record.result(String::new(), &texts), shown(run.graded()));
        let empty = TestResult {
            throttled: Some(Vec::new()),
            ..result(5201, 1)
        };
        let record = Record::new(&empty, 0, 0, &mut texts);
        assert_eq!(record.result(String::new(), &texts), shown(empty.graded()));
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
        assert_eq!(compact.iter().count(), 1);
        assert_eq!(compact.tags().collect::<Vec<_>>(), vec![(1, "TCP")]);
    }

    #[test]
    fn what_is_narrowed_shows_the_same() {
        let mut texts = Interner::default();
        for (temp, shown) in [(61.3, Some(61.3)), (-5.0, Some(-5.0)), (0.04, Some(0.0))] {
            let r = TestResult {
                cpu_temp_c: Some(temp),
                ..result(5201, 1)
            };
            let back = Record::new(&r, 0, 0, &mut texts).result(String::new(), &texts);
            assert_eq!(back.cpu_temp_c, shown);
        }
        let many = TestResult {
            streams: 100_000,
            ..result(5201, 1)
        };
        let back = Record::new(&many, 0, 0, &mut texts).result(String::new(), &texts);
        assert_eq!(back.streams, u32::from(u16::MAX));
        // Tags past the limit (a crafted log) are no value, never wrong.
        let mut full = Interner::default();
        for i in 0..TAG_LIMIT + 5 {
            let n = full.intern_tag(&i.to_string());
            assert_eq!(n == 0, i + 1 >= TAG_LIMIT, "{i}");
        }
    }

    #[test]
    fn a_record_encodes_and_renumbers() {
        let mut texts = Interner::default();
        texts.intern("padding");
        let full = TestResult {
            name: Some("alice".into()),
            client: Some("10.0.0.1".into()),
            throttled: Some(vec!["throttled".into()]),
            retransmits: Some(7),
            cpu_temp_c: Some(48.5),
            timestamp: -3,
            link_bps: Some(2.5e9),
            limited_by: Some(LimitedBy::Network),
            ..result(5202, 0)
        };
        let record = Record::new(&full, 9, 1234, &mut texts);
        let mut bytes = Vec::new();
        record.encode(&mut bytes);
        assert_eq!(bytes.len(), ENCODED_LEN);
        let back = Record::decode(&bytes).unwrap();
        assert_eq!(back.file, NO_FILE);
        assert_eq!(back.offset, 1234);
        assert_eq!(back.result(String::new(), &texts), shown(full.clone()));
        assert!(Record::decode(&bytes[1..]).is_none());
        // Moved to a table where every number is one more.
        let words: Vec<u32> = (0..=texts.iter().count() as u32)
            .map(|n| if n == 0 { 0 } else { n + 1 })
            .collect();
        let tags = vec![0u16, 2, 3];
        let mut other = Interner::default();
        other.intern("x");
        for (_, t) in texts.iter() {
            other.intern(t);
        }
        other.intern_tag("y");
        for (_, t) in texts.tags() {
            other.intern_tag(t);
        }
        let moved = back.renumber(&words, &tags, 4).unwrap();
        assert_eq!(moved.file, 4);
        assert_eq!(moved.result(String::new(), &other), shown(full));
        assert!(back.renumber(&words[..1], &tags, 4).is_none());
    }
}
