//! The persisted index of one log file: what loading found in the part of
//! the file it covers (the compact records with their texts, the file's
//! key, the port's latest entry, the damage), so that a restart reads about
//! 100 bytes per test it has seen instead of parsing the test's JSON again.
//!
//! Only a cache: an index is used only when everything it names still
//! holds (its format version, the log's identity, that the log is at least
//! as long as the part covered and still has the same bytes where the
//! fingerprint looks, the index's own checksum); otherwise the log is
//! parsed as if there were none. This module is the format alone, pure:
//! encoding, decoding with every length checked before anything is
//! allocated, and the hashes. Where the files live is [`super::index_dir`].

use super::compact::{Interner, Record, ENCODED_LEN};
use super::ids::LogKey;

/// The version of the format, in every index's header. Bump it whenever
/// what an index holds would differ for the same log: the encoding below,
/// [`Record`]'s fields or [`Record::encode`], or what a log entry is
/// summarised into ([`super::summary`], [`super::ndt7_log::result_of`]),
/// or the damage the reader reports. Indexes of another version are
/// ignored and rewritten.
pub const VERSION: u32 = 1;

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

/// Everything an index holds.
#[derive(Debug, Clone)]
pub struct Covered {
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

/// A hash of `bytes` that is quick to compute (about a byte per CPU cycle
/// or better) and catches changed bytes; not for adversaries.
pub fn hash(bytes: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ u64::from_le_bytes(last)).wrapping_mul(K);
    // Murmur3's finaliser: every input bit reaches every output bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
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

/// `log` as one number: 0 for ndt7, else the port.
fn log_number(log: LogKey) -> u16 {
    match log {
        LogKey::Port(port) => port,
        LogKey::Ndt7 => 0,
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
    let _reserved = r.u32()?;
    let log = match r.u16()? {
        0 => LogKey::Ndt7,
        port => LogKey::Port(port),
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

impl Covered {
    /// The index file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let texts: usize = self.texts.iter().map(|(_, t)| t.len() + 4).sum();
        let mut out =
            Vec::with_capacity(HEADER_LEN + 64 + texts + self.records.len() * ENCODED_LEN);
        out.extend_from_slice(MAGIC);
        for x in [VERSION, ENCODED_LEN as u32, 0] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&log_number(self.log).to_le_bytes());
        let total_at = HEADER_LEN - 8;
        for x in [
            self.identity.dev,
            self.identity.ino,
            self.len,
            self.fingerprint,
            0,
        ] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.push(u8::from(self.key.is_some()));
        out.extend_from_slice(&self.key.unwrap_or(0).to_le_bytes());
        let (tag, at) = match self.latest {
            Latest::Untouched => (0u8, 0),
            Latest::Cleared => (1, 0),
            Latest::At(at) => (2, at),
        };
        out.push(tag);
        out.extend_from_slice(&at.to_le_bytes());
        let put_texts = |out: &mut Vec<u8>, texts: &mut dyn Iterator<Item = &str>, n: usize| {
            out.extend_from_slice(&(n as u64).to_le_bytes());
            for t in texts {
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
        };
        put_texts(
            &mut out,
            &mut self.damage.iter().map(String::as_str),
            self.damage.len(),
        );
        let words: Vec<&str> = self.texts.iter().map(|(_, t)| t).collect();
        put_texts(&mut out, &mut words.iter().copied(), words.len());
        let tags: Vec<&str> = self.texts.tags().map(|(_, t)| t).collect();
        put_texts(&mut out, &mut tags.iter().copied(), tags.len());
        out.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        for record in &self.records {
            record.encode(&mut out);
        }
        let total = out.len() as u64 + 8;
        out[total_at..total_at + 8].copy_from_slice(&total.to_le_bytes());
        let sum = hash(&out, 0);
        out.extend_from_slice(&sum.to_le_bytes());
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
            let fits = [record.name, record.title, record.client, record.error]
                .iter()
                .all(|&w| (w as usize) < words)
                && [record.protocol, record.throttled]
                    .iter()
                    .all(|&t| usize::from(t) < tags);
            if !fits || record.offset >= head.len {
                return Err(Refused::Corrupt);
            }
            records.push(record);
        }
        if r.at != body.len() {
            return Err(Refused::Corrupt);
        }
        Ok(Covered {
            log: head.log,
            identity: head.identity,
            len: head.len,
            fingerprint: head.fingerprint,
            key,
            latest,
            damage,
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
            log: LogKey::Port(5201),
            identity: Identity { dev: 7, ino: 42 },
            len: 6000,
            fingerprint: 99,
            key: Some(100),
            latest: Latest::At(4000),
            damage: vec!["line 3: skipped text that is not a log entry".into()],
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
        assert_eq!((back.key, back.latest), (Some(100), Latest::At(4000)));
        assert_eq!(back.damage, want.damage);
        assert_eq!(
            header(&bytes).unwrap().identity,
            Identity { dev: 7, ino: 42 }
        );
        for (latest, key) in [(Latest::Cleared, None), (Latest::Untouched, Some(-5))] {
            let c = Covered {
                latest,
                key,
                ..sample()
            };
            let back = Covered::decode(&c.encode()).unwrap();
            assert_eq!((back.latest, back.key), (latest, key));
        }
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
}
