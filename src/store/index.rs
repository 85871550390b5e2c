//! The persisted index of one log file: what loading found in the part of
//! the file it covers (the compact records with their texts, the file's
//! key, the port's latest entry, the damage), so that a restart reads about
//! about 110 bytes per test it has seen instead of parsing the test's JSON again.
//!
//! Only a cache: an index is used only when everything it names still
//! holds (its format version, the log's identity, that the log is at least
//! as long as the part covered and still has the same bytes where the
//! fingerprint looks, the index's own checksum); otherwise the log is
//! parsed as if there were none. This module is the format alone, pure:
//! encoding, decoding with every length checked before anything is
//! allocated, and the hashes. Where the files live is [`super::index_dir`].

use std::io::{self, Write};

use super::compact::{Interner, Record, ENCODED_LEN, NO_FILE};
use super::ids::LogKey;

/// The version of the format, in every index's header. Bump it whenever
/// what an index holds would differ for the same log: the encoding below,
/// [`Record`]'s fields or [`Record::encode`], or what a log entry is
/// summarised into ([`super::summary`], [`super::ndt7_log::result_of`]),
/// or the damage the reader reports. Indexes of another version are
/// ignored and rewritten. A unit test pins what an index holds for the
/// stock fixture's entries to this version, so such a change fails it
/// until the version is bumped.
pub const VERSION: u32 = 2;

/// The first bytes of an index file.
const MAGIC: &[u8; 8] = b"wp3index";

/// How much of the start and of the end of the covered part of a log the
/// fingerprint reads.
pub const FINGERPRINT_SPAN: u64 = 64 * 1024;

/// A log file's identity: it stays when the file is renamed (rotated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The device the file is on.
    pub dev: u64,
    /// Its inode.
    pub ino: u64,
}

/// What the covered part of a port's log does to the port's latest test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latest {
    /// Nothing: no test and no `{}` marker in it.
    Untouched,
    /// Its last item is a `{}` marker.
    Cleared,
    /// Its last item is the test at this offset.
    At(u64),
}

/// What an index says about the covered part of its file, besides its
/// tests.
#[derive(Debug, Clone, PartialEq)]
pub struct About {
    /// Whose log the file is.
    pub log: LogKey,
    /// The file's identity.
    pub identity: Identity,
    /// The bytes covered, from the start of the file; what follows starts
    /// with a line that is exactly `{`.
    pub len: u64,
    /// [`fingerprint`] of the covered part.
    pub fingerprint: u64,
    /// The file's key (its first test's start), if the covered part has a test.
    pub key: Option<i64>,
    /// The port's latest test after the covered part.
    pub latest: Latest,
    /// The damage found in the covered part, as warnings without the file's
    /// name (which rotation changes).
    pub damage: Vec<String>,
}

/// Everything an index holds.
#[derive(Debug, Clone)]
pub struct Covered {
    /// What it says about the covered part.
    pub about: About,
    /// The tests of the covered part in file order, texts numbered in `texts`.
    pub records: Vec<Record>,
    /// The records' texts.
    pub texts: Interner,
}

/// Why an index was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not an index, or one cut short or corrupted (its checksum fails).
    #[error("not a whole index")]
    Corrupt,
    /// Written by another version of the format.
    #[error("another version")]
    Version,
    /// It is about another file, or the file changed under it.
    #[error("stale")]
    Stale,
}

/// The size of an index's header: what [`header`] reads.
pub const HEADER_LEN: usize = 8 + 4 + 4 + 4 + 2 + 8 * 5;

/// A hash that is quick to compute (a multiply per eight bytes) and
/// catches changed bytes; not for adversaries. Fed in pieces, it gives
/// what it gives fed at once.
#[derive(Debug, Clone)]
pub struct Hasher {
    h: u64,
    pending: [u8; 8],
    filled: usize,
    len: u64,
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher {
    /// A hash starting from `seed`.
    pub fn new(seed: u64) -> Hasher {
        Hasher {
            h: seed,
            pending: [0; 8],
            filled: 0,
            len: 0,
        }
    }

    fn word(&mut self, w: [u8; 8]) {
        self.h = (self.h ^ u64::from_le_bytes(w))
            .wrapping_mul(K)
            .rotate_left(29);
    }

    /// Adds `bytes`.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.filled > 0 {
            let n = (8 - self.filled).min(bytes.len());
            self.pending[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled < 8 {
                return;
            }
            self.word(self.pending);
            self.filled = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.word(w.try_into().unwrap_or_default());
        }
        let rest = words.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    /// The hash of everything added.
    pub fn finish(&self) -> u64 {
        let mut last = [0u8; 8];
        last[..self.filled].copy_from_slice(&self.pending[..self.filled]);
        let mut h = (self.h ^ u64::from_le_bytes(last)).wrapping_mul(K);
        h ^= self.len.wrapping_mul(K);
        // Murmur3's finaliser: every input bit reaches every output bit.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The [`Hasher`] hash of `bytes`.
pub fn hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h = Hasher::new(seed);
    h.update(bytes);
    h.finish()
}

/// The fingerprint of a covered part of `len` bytes from its first
/// `head` and last `tail` bytes (each [`FINGERPRINT_SPAN`] or all of it).
pub fn fingerprint(len: u64, head: &[u8], tail: &[u8]) -> u64 {
    hash(tail, hash(head, len))
}

/// Where the fingerprint of a covered part of `len` bytes reads: the
/// offset and length of its tail (its head is the first
/// `min(len, FINGERPRINT_SPAN)` bytes).
pub fn tail_span(len: u64) -> (u64, u64) {
    let n = len.min(FINGERPRINT_SPAN);
    (len - n, n)
}

/// `log` as two numbers: its class (1 for the probes' log, else 0, in
/// the header's once reserved word, so older indexes still read) and 0
/// for ndt7, else the port.
fn log_numbers(log: LogKey) -> (u32, u16) {
    match log {
        LogKey::Port(port) => (0, port),
        LogKey::Ndt7 => (0, 0),
        LogKey::Probe => (1, 0),
    }
}

/// The header fields that say whether an index may be about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Whose log.
    pub log: LogKey,
    /// The file's identity.
    pub identity: Identity,
    /// The bytes covered.
    pub len: u64,
    /// Their fingerprint.
    pub fingerprint: u64,
    /// The length of the whole index file.
    pub total: u64,
}

/// Reads the header at the start of an index; `bytes` is at least
/// [`HEADER_LEN`] long.
pub fn header(bytes: &[u8]) -> Result<Header, Refused> {
    let mut r = Cursor { bytes, at: 0 };
    if r.take(8)? != MAGIC {
        return Err(Refused::Corrupt);
    }
    if r.u32()? != VERSION || r.u32()? != ENCODED_LEN as u32 {
        return Err(Refused::Version);
    }
    let log = match (r.u32()?, r.u16()?) {
        (0, 0) => LogKey::Ndt7,
        (0, port) => LogKey::Port(port),
        (1, 0) => LogKey::Probe,
        _ => return Err(Refused::Corrupt),
    };
    let identity = Identity {
        dev: r.u64()?,
        ino: r.u64()?,
    };
    Ok(Header {
        log,
        identity,
        len: r.u64()?,
        fingerprint: r.u64()?,
        total: r.u64()?,
    })
}

/// The numbers of the texts `records` use, in the order first used:
/// old number → new (0 for unused), and the texts in new order.
fn used_texts<'t>(
    records: &[Record],
    texts: &'t Interner,
) -> (Vec<u32>, Vec<&'t str>, Vec<u16>, Vec<&'t str>) {
    let mut words = vec![0u32; texts.iter().count() + 1];
    let mut tags = vec![0u16; texts.tags().count() + 1];
    let (mut word_texts, mut tag_texts) = (Vec::new(), Vec::new());
    for record in records {
        let (word_numbers, tag_numbers) = record.text_numbers();
        for n in word_numbers {
            let Some(slot) = words.get_mut(n as usize) else {
                continue;
            };
            if n != 0 && *slot == 0 {
                word_texts.push(texts.get(n).unwrap_or(""));
                *slot = u32::try_from(word_texts.len()).unwrap_or(u32::MAX);
            }
        }
        for n in tag_numbers {
            let Some(slot) = tags.get_mut(usize::from(n)) else {
                continue;
            };
            if n != 0 && *slot == 0 {
                tag_texts.push(texts.tag(n).unwrap_or(""));
                *slot = u16::try_from(tag_texts.len()).unwrap_or(u16::MAX);
            }
        }
    }
    (words, word_texts, tags, tag_texts)
}

/// The bytes a counted list of `texts` takes.
fn texts_len<S: AsRef<str>>(texts: &[S]) -> u64 {
    8 + texts
        .iter()
        .map(|t| 4 + t.as_ref().len() as u64)
        .sum::<u64>()
}

/// Writes through `out` while hashing what is written.
struct Hashing<W> {
    out: W,
    hash: Hasher,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    fn texts<S: AsRef<str>>(&mut self, texts: &[S]) -> io::Result<()> {
        self.put(&(texts.len() as u64).to_le_bytes())?;
        for t in texts {
            let t = t.as_ref().as_bytes();
            let len = u32::try_from(t.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
            self.put(&len.to_le_bytes())?;
            self.put(t)?;
        }
        Ok(())
    }
}

/// Writes the index of a covered part to `out`: `about`, and `records`
/// (in file order) with the texts of `texts` they use, renumbered so the
/// index holds only those. Streams: nothing the size of the records is
/// built in memory.
pub fn write(
    about: &About,
    records: &[Record],
    texts: &Interner,
    out: impl Write,
) -> io::Result<()> {
    let (words, word_texts, tags, tag_texts) = used_texts(records, texts);
    let total = HEADER_LEN as u64
        + 18
        + texts_len(&about.damage)
        + texts_len(&word_texts)
        + texts_len(&tag_texts)
        + 8
        + records.len() as u64 * ENCODED_LEN as u64
        + 8;
    let mut w = Hashing {
        out,
        hash: Hasher::new(0),
    };
    w.put(MAGIC)?;
    let (class, number) = log_numbers(about.log);
    for x in [VERSION, ENCODED_LEN as u32, class] {
        w.put(&x.to_le_bytes())?;
    }
    w.put(&number.to_le_bytes())?;
    let identity = about.identity;
    for x in [
        identity.dev,
        identity.ino,
        about.len,
        about.fingerprint,
        total,
    ] {
        w.put(&x.to_le_bytes())?;
    }
    w.put(&[u8::from(about.key.is_some())])?;
    w.put(&about.key.unwrap_or(0).to_le_bytes())?;
    let (tag, at) = match about.latest {
        Latest::Untouched => (0u8, 0),
        Latest::Cleared => (1, 0),
        Latest::At(at) => (2, at),
    };
    w.put(&[tag])?;
    w.put(&at.to_le_bytes())?;
    w.texts(&about.damage)?;
    w.texts(&word_texts)?;
    w.texts(&tag_texts)?;
    w.put(&(records.len() as u64).to_le_bytes())?;
    let mut encoded = Vec::with_capacity(ENCODED_LEN);
    for record in records {
        // Every number is in the tables: they were made from these records.
        let renumbered = record.renumber(&words, &tags, NO_FILE).unwrap_or(*record);
        encoded.clear();
        renumbered.encode(&mut encoded);
        w.put(&encoded)?;
    }
    let sum = w.hash.finish();
    w.out.write_all(&sum.to_le_bytes())
}

impl Covered {
    /// The index file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to memory cannot fail.
        let _ = write(&self.about, &self.records, &self.texts, &mut out);
        out
    }

    /// An index read back from its bytes. Every count is checked against
    /// the bytes left before anything is allocated for it, every record's
    /// text numbers against its tables.
    pub fn decode(bytes: &[u8]) -> Result<Covered, Refused> {
        let body_len = bytes.len().checked_sub(8).ok_or(Refused::Corrupt)?;
        if bytes.len() < HEADER_LEN + 8 {
            return Err(Refused::Corrupt);
        }
        let (body, sum) = bytes.split_at(body_len);
        if hash(body, 0).to_le_bytes() != sum {
            return Err(Refused::Corrupt);
        }
        let head = header(body)?;
        if head.total != bytes.len() as u64 {
            return Err(Refused::Corrupt);
        }
        let mut r = Cursor {
            bytes: body,
            at: HEADER_LEN,
        };
        let has_key = r.u8()?;
        let key = r.i64()?;
        let key = match has_key {
            0 => None,
            1 => Some(key),
            _ => return Err(Refused::Corrupt),
        };
        let (tag, at) = (r.u8()?, r.u64()?);
        let latest = match tag {
            0 => Latest::Untouched,
            1 => Latest::Cleared,
            2 => Latest::At(at),
            _ => return Err(Refused::Corrupt),
        };
        let damage = r.texts()?.into_iter().map(str::to_string).collect();
        let mut texts = Interner::default();
        for (i, word) in (1u32..).zip(r.texts()?) {
            // Each word once, in order: its number is its place.
            if texts.intern(word) != i {
                return Err(Refused::Corrupt);
            }
        }
        for (i, tag) in (1u16..).zip(r.texts()?) {
            if texts.intern_tag(tag) != i {
                return Err(Refused::Corrupt);
            }
        }
        let n = r.count(ENCODED_LEN)?;
        let words = texts.iter().count() + 1;
        let tags = texts.tags().count() + 1;
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            let record = Record::decode(r.take(ENCODED_LEN)?).ok_or(Refused::Corrupt)?;
            let (word_numbers, tag_numbers) = record.text_numbers();
            let fits = word_numbers.iter().all(|&w| (w as usize) < words)
                && tag_numbers.iter().all(|&t| usize::from(t) < tags);
            if !fits || record.offset >= head.len {
                return Err(Refused::Corrupt);
            }
            records.push(record);
        }
        if r.at != body.len() {
            return Err(Refused::Corrupt);
        }
        Ok(Covered {
            about: About {
                log: head.log,
                identity: head.identity,
                len: head.len,
                fingerprint: head.fingerprint,
                key,
                latest,
                damage,
            },
            records,
            texts,
        })
    }
}

/// Reads an index's bytes in order, every read checked against what is left.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refused> {
        let end = self.at.checked_add(n).ok_or(Refused::Corrupt)?;
        let taken = self.bytes.get(self.at..end).ok_or(Refused::Corrupt)?;
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Refused> {
        self.take(N)?.try_into().map_err(|_| Refused::Corrupt)
    }

    fn u8(&mut self) -> Result<u8, Refused> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Refused> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Refused> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Refused> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, Refused> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A count of items each at least `each` bytes long, refused if they
    /// cannot fit in what is left.
    fn count(&mut self, each: usize) -> Result<usize, Refused> {
        let n = usize::try_from(self.u64()?).map_err(|_| Refused::Corrupt)?;
        let left = self.bytes.len() - self.at;
        if n.checked_mul(each).is_none_or(|need| need > left) {
            return Err(Refused::Corrupt);
        }
        Ok(n)
    }

    /// A counted list of length-prefixed UTF-8 texts.
    fn texts(&mut self) -> Result<Vec<&'a str>, Refused> {
        let n = self.count(4)?;
        let mut texts = Vec::with_capacity(n);
        for _ in 0..n {
            let len = self.u32()? as usize;
            let text = std::str::from_utf8(self.take(len)?).map_err(|_| Refused::Corrupt)?;
            texts.push(text);
        }
        Ok(texts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::results::tests::result;

    fn sample() -> Covered {
        let mut texts = Interner::default();
        let records = (0..5)
            .map(|i| {
                let r = crate::store::result::TestResult {
                    name: Some(format!("host-{}", i % 2)),
                    throttled: (i == 3).then(|| vec!["throttled".to_string()]),
                    ..result(5201, 100 + i)
                };
                Record::new(&r, 0, 1000 * i as u64, &mut texts)
            })
            .collect();
        Covered {
            about: About {
                log: LogKey::Port(5201),
                identity: Identity { dev: 7, ino: 42 },
                len: 6000,
                fingerprint: 99,
                key: Some(100),
                latest: Latest::At(4000),
                damage: vec!["line 3: skipped text that is not a log entry".into()],
            },
            records,
            texts,
        }
    }

    fn without_file(mut c: Covered) -> Covered {
        for r in &mut c.records {
            r.file = crate::store::compact::NO_FILE;
        }
        c
    }

    #[test]
    fn an_index_reads_back_as_written() {
        let covered = sample();
        let bytes = covered.encode();
        let back = Covered::decode(&bytes).unwrap();
        let want = without_file(covered);
        let bytes_of = |c: &Covered| {
            let mut out = Vec::new();
            c.records.iter().for_each(|r| r.encode(&mut out));
            out
        };
        assert_eq!(back.records.len(), 5);
        assert_eq!(bytes_of(&back), bytes_of(&want));
        assert_eq!(
            back.texts.iter().collect::<Vec<_>>(),
            want.texts.iter().collect::<Vec<_>>()
        );
        assert_eq!(
            back.texts.tags().collect::<Vec<_>>(),
            want.texts.tags().collect::<Vec<_>>()
        );
        assert_eq!(back.about, want.about);
        assert_eq!(
            header(&bytes).unwrap().identity,
            Identity { dev: 7, ino: 42 }
        );
        for (latest, key) in [(Latest::Cleared, None), (Latest::Untouched, Some(-5))] {
            let mut c = sample();
            (c.about.latest, c.about.key) = (latest, key);
            let back = Covered::decode(&c.encode()).unwrap();
            assert_eq!((back.about.latest, back.about.key), (latest, key));
        }
    }

    #[test]
    fn an_index_holds_only_the_texts_its_tests_use() {
        let mut c = sample();
        let mut texts = Interner::default();
        for unused in ["gone", "host-1", "also gone"] {
            texts.intern(unused);
        }
        texts.intern_tag("SCTP");
        c.records = c
            .records
            .iter()
            .map(|r| r.reintern(&c.texts, &mut texts))
            .collect();
        c.texts = texts;
        let back = Covered::decode(&c.encode()).unwrap();
        assert_eq!(
            back.texts.iter().map(|(_, t)| t).collect::<Vec<_>>(),
            ["host-0", "host-1"]
        );
        assert_eq!(back.texts.tags().count(), 2);
        for (r, b) in c.records.iter().zip(&back.records) {
            assert_eq!(
                b.result(String::new(), &back.texts),
                r.result(String::new(), &c.texts)
            );
        }
        // In pieces or at once, the same hash.
        let bytes = c.encode();
        let mut h = Hasher::new(3);
        for piece in bytes.chunks(5) {
            h.update(piece);
        }
        assert_eq!(h.finish(), hash(&bytes, 3));
    }

    #[test]
    fn a_damaged_index_is_refused_never_trusted() {
        let bytes = sample().encode();
        for cut in [0, 7, HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(
                Covered::decode(&bytes[..cut]).err(),
                Some(Refused::Corrupt),
                "cut at {cut}"
            );
        }
        for at in (0..bytes.len()).step_by(3) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(Covered::decode(&bad).is_err(), "byte {at} flipped");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Covered::decode(&longer).is_err());
        let mut other = bytes.clone();
        other[8] = other[8].wrapping_add(1);
        assert_eq!(header(&other), Err(Refused::Version));
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        // A well-formed index claiming 2^60 records in a few bytes: the
        // checksum is made right, the count must still be refused.
        let mut c = sample();
        c.records.clear();
        let mut bytes = c.encode();
        bytes.truncate(bytes.len() - 8);
        let n_at = bytes.len() - 8;
        bytes[n_at..].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let sum = hash(&bytes, 0);
        bytes.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(Covered::decode(&bytes).err(), Some(Refused::Corrupt));
    }

    #[test]
    fn the_hash_sees_every_byte() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let h = hash(&data, 1);
        for at in [0, 1, 500, 998, 999] {
            let mut d = data.clone();
            d[at] ^= 1;
            assert_ne!(hash(&d, 1), h, "byte {at}");
        }
        assert_ne!(hash(&data[..999], 1), h);
        assert_ne!(hash(&data, 2), h);
        assert_eq!(tail_span(10), (0, 10));
        assert_eq!(tail_span(FINGERPRINT_SPAN + 5), (5, FINGERPRINT_SPAN));
    }

    /// What an index holds of known entries, pinned: a change to the
    /// summary or to the record that changes what an index would hold for
    /// the same log fails here, as a reminder to bump [`VERSION`] (so old
    /// indexes are ignored) and then the pin.
    #[test]
    fn what_an_index_holds_is_pinned_to_its_version() {
        use crate::store::reader::{read_log_at, Detail, LogItem};
        let stock = include_str!("../../tests/fixtures/stock-3.12.json");
        let mut texts = Interner::default();
        let mut bytes = Vec::new();
        read_log_at(stock, Detail::Summary, |at, item| {
            if let LogItem::Entry(entry) = item {
                let r = crate::store::summary::summarize(5201, &entry);
                if let Some(r) = r.map(|r| crate::store::verdict::with_limit(r, &entry)) {
                    Record::new(&r, 0, at as u64, &mut texts).encode(&mut bytes);
                }
            }
        });
        let ndt7 = crate::ndt7::record::tests::sample(crate::ndt7::Kind::Upload, 1_000, "n");
        let r = crate::store::ndt7_log::result_of(&ndt7, String::new()).unwrap();
        Record::new(&r, 0, 0, &mut texts).encode(&mut bytes);
        assert_eq!(bytes.len(), 8 * ENCODED_LEN);
        for (_, t) in texts
            .iter()
            .chain(texts.tags().map(|(n, t)| (u32::from(n), t)))
        {
            bytes.extend_from_slice(t.as_bytes());
            bytes.push(0);
        }
        let pinned = (VERSION, hash(&bytes, 0));
        assert_eq!(
            pinned,
            (2, 0x83c3_29c9_1c37_cebf),
            "bump index::VERSION, then this pin"
        );
    }
}
