//! Questions asked of the history: which tests match a filter, the most
//! recent page of them, a stretch of them for streaming, and per time
//! bucket figures for a chart. Works on the compact records, building a
//! result object only for what is answered. No I/O here.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::analysis::test_result::TestResult;
use crate::history::compact::{widen, Record};
use crate::history::ids::TestId;
use crate::history::kinds::{Kind, Kinds};
use crate::history::medians::{ByKind, KindFigures};
use crate::history::results_store::ResultsStore;

/// Which tests to show; every field set must match.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    /// Only this port.
    pub port: Option<u16>,
    /// Only this exact name (`--extra-data`).
    pub name: Option<String>,
    /// Only names holding this text (any case).
    pub name_part: Option<String>,
    /// Only tests that started at or after these unix seconds.
    pub since: Option<f64>,
    /// Only tests that started at or before these unix seconds.
    pub until: Option<f64>,
    /// Only this protocol (`TCP`, `UDP`, `ndt7`; any case).
    pub protocol: Option<String>,
    /// Only clients of this address family (4 or 6).
    pub family: Option<u8>,
    /// Only tests of this kind.
    pub kind: Option<Kind>,
}

/// Whether `name` holds `part`, in any case (`part` already lower case).
fn name_holds(name: &str, part: &str) -> bool {
    if name.is_ascii() && part.is_ascii() {
        // No allocation for the usual names.
        return name
            .as_bytes()
            .windows(part.len().max(1))
            .any(|w| w.eq_ignore_ascii_case(part.as_bytes()))
            || part.is_empty();
    }
    name.to_lowercase().contains(part)
}

impl Filter {
    /// Whether a test named `name` passes the name filters; `part` is
    /// `name_part` in lower case.
    fn name_passes(&self, part: Option<&str>, name: Option<&str>) -> bool {
        self.name.as_deref().is_none_or(|n| name == Some(n))
            && part.is_none_or(|p| name.is_some_and(|r| name_holds(r, p)))
    }

    /// Whether `result` passes the filter.
    pub fn matches(&self, result: &TestResult) -> bool {
        // i64 → f64 is exact for any plausible timestamp.
        #[allow(clippy::cast_precision_loss)]
        let time = result.timestamp as f64;
        self.port.is_none_or(|p| p == result.port)
            && self.name_passes(
                self.name_part.as_deref().map(str::to_lowercase).as_deref(),
                result.name.as_deref(),
            )
            && self.kind.is_none_or(|k| {
                let probe = result.kind == Some(crate::analysis::probe::KIND);
                Kind::of_protocol(&result.protocol, probe) == k
            })
            && self.since.is_none_or(|s| time >= s)
            && self.until.is_none_or(|u| time <= u)
            && self
                .protocol
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case(&result.protocol))
            && self.family.is_none_or(|f| {
                let v6 = result.client.as_deref().is_some_and(|c| c.contains(':'));
                result.client.is_some() && (f == 6) == v6
            })
    }

    /// The filter against one store's interned texts.
    fn compile(&self, store: &ResultsStore) -> Compiled {
        let texts = store.texts();
        // Per word number: whether it is a name that passes (words are
        // few beside the tests; a test then costs one lookup).
        let part = self.name_part.as_deref().map(str::to_lowercase);
        let name = (self.name.is_some() || part.is_some()).then(|| {
            let mut passes = vec![false; texts.iter().count() + 1];
            for (number, word) in texts.iter() {
                if let Some(slot) = passes.get_mut(number as usize) {
                    *slot = self.name_passes(part.as_deref(), Some(word));
                }
            }
            passes
        });
        let protocols = self.protocol.as_deref().map(|p| {
            texts
                .tags()
                .filter(|(_, t)| t.eq_ignore_ascii_case(p))
                .map(|(n, _)| n)
                .collect()
        });
        Compiled {
            port: self.port,
            name,
            since: self.since,
            until: self.until,
            protocols,
            family: self.family,
            kind: self.kind.map(|k| (Kinds::new(store), k)),
        }
    }
}

/// A [`Filter`] as numbers to compare records with.
struct Compiled {
    port: Option<u16>,
    /// Per word number: a name that matches.
    name: Option<Vec<bool>>,
    since: Option<f64>,
    until: Option<f64>,
    protocols: Option<Vec<u16>>,
    family: Option<u8>,
    kind: Option<(Kinds, Kind)>,
}

impl Compiled {
    fn matches(&self, r: &Record) -> bool {
        #[allow(clippy::cast_precision_loss)]
        let time = r.timestamp as f64;
        self.port.is_none_or(|p| p == r.port)
            && self
                .name
                .as_ref()
                .is_none_or(|n| n.get(r.name as usize).copied().unwrap_or(false))
            && self.since.is_none_or(|s| time >= s)
            && self.until.is_none_or(|u| time <= u)
            && self
                .protocols
                .as_ref()
                .is_none_or(|p| p.contains(&r.protocol))
            && self
                .family
                .is_none_or(|f| r.client != crate::history::compact::NONE && (f == 6) == r.is_v6())
            && self.kind.as_ref().is_none_or(|(k, kind)| k.of(r) == *kind)
    }
}

/// A page of the history: the most recent `limit` tests matching, older
/// than `before` when set.
#[derive(Debug, Default, Clone)]
pub struct Page {
    /// Which tests.
    pub filter: Filter,
    /// How many at most.
    pub limit: usize,
    /// Only tests before this one (in history order).
    pub before: Option<TestId>,
}

/// Tests looked at per test asked for by one [`ResultsStore::stretch`]
/// (a filter that matches few still reads in bounded stretches).
pub const SCAN: usize = 4;

/// Where a walk over the whole history (an export) is: after the tests it
/// has read, known by which tests they are rather than by position, so a
/// rotation that drops older tests from under it makes it skip nothing.
/// Tests keep their order in the history; only new ones are added (at the
/// end) and dropped ones leave it.
#[derive(Debug, Default, Clone)]
pub struct Cursor {
    /// The position after the last test read, when it was read.
    next: usize,
    /// The last test read.
    last: Option<Key>,
    /// The tests the last stretch looked at.
    read: HashSet<Key>,
}

/// A test as a cursor knows it: its file, offset and start time.
type Key = (u32, u64, i64);

impl Cursor {
    fn key(record: &Record) -> Key {
        (record.file, record.offset, record.timestamp)
    }

    /// Where to go on from in `records`: after the last test read that is
    /// still there. Tests only ever leave the history before that one's
    /// old position, so it is looked for from there back. If every test
    /// the last stretch looked at left (all in a file rotation deleted),
    /// from the first test that started no earlier than the last one read:
    /// tests may then be sent twice, and one recorded late with an earlier
    /// start (a long test) may be missed.
    fn resume(&self, records: &[Record]) -> usize {
        let Some(last) = self.last else {
            return 0;
        };
        let hint = self.next.min(records.len());
        if hint > 0 && Cursor::key(&records[hint - 1]) == last {
            return hint;
        }
        if let Some(p) = records[..hint]
            .iter()
            .rposition(|r| self.read.contains(&Cursor::key(r)))
        {
            return p + 1;
        }
        records
            .iter()
            .position(|r| r.timestamp >= last.2)
            .unwrap_or(records.len())
    }
}

/// Why a question cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `before=` names a test the history does not have.
    #[error("before: no test has the id {0}")]
    UnknownBefore(String),
}

impl ResultsStore {
    /// The page `page` asks for, oldest first.
    pub fn page(&self, page: &Page) -> Result<Vec<TestResult>, QueryError> {
        let end = match &page.before {
            Some(id) => self
                .find(id)
                .ok_or_else(|| QueryError::UnknownBefore(id.to_string()))?,
            None => self.len(),
        };
        let filter = page.filter.compile(self);
        let records = self.records();
        let mut found: Vec<usize> = records[..end]
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, r)| filter.matches(r))
            .map(|(i, _)| i)
            .take(page.limit)
            .collect();
        found.reverse();
        Ok(found.into_iter().map(|i| self.result(i)).collect())
    }

    /// Up to `n` tests matching `filter` after those `cursor` has read
    /// (looking at no more than [`SCAN`]` × n` tests), moving the cursor
    /// past them; and whether that reached the end of the history.
    pub fn stretch(
        &self,
        filter: &Filter,
        cursor: &mut Cursor,
        n: usize,
    ) -> (Vec<TestResult>, bool) {
        let compiled = filter.compile(self);
        let records = self.records();
        let from = cursor.resume(records);
        let mut out = Vec::new();
        let mut at = from;
        while at < records.len() && out.len() < n && at - from < n.saturating_mul(SCAN) {
            if compiled.matches(&records[at]) {
                out.push(self.result(at));
            }
            at += 1;
        }
        if at > from {
            cursor.read = records[from..at].iter().map(Cursor::key).collect();
            cursor.last = Some(Cursor::key(&records[at - 1]));
        }
        cursor.next = at;
        (out, at >= records.len())
    }

    /// The tests matching `filter` in `n` equal spans of time from the
    /// first to the last, with per span figures (empty spans left out).
    pub fn buckets(&self, filter: &Filter, n: usize) -> Vec<Bucket> {
        let compiled = filter.compile(self);
        let kinds = Kinds::new(self);
        let matching = || self.records().iter().filter(|r| compiled.matches(r));
        let (Some(first), Some(last)) = (
            matching().map(|r| r.timestamp).min(),
            matching().map(|r| r.timestamp).max(),
        ) else {
            return Vec::new();
        };
        let n = n.max(1);
        // Whole seconds per bucket, at least one.
        let span = last.saturating_sub(first).saturating_add(1);
        let parts = i64::try_from(n).unwrap_or(i64::MAX);
        let width = (span / parts + i64::from(span % parts != 0)).max(1);
        let mut buckets: Vec<Accumulator> = Vec::new();
        buckets.resize_with(n, Accumulator::default);
        for r in matching() {
            let k = usize::try_from((r.timestamp - first) / width).unwrap_or(0);
            if let Some(b) = buckets.get_mut(k) {
                b.add(r, kinds.of(r));
            }
        }
        buckets
            .into_iter()
            .enumerate()
            .filter(|(_, b)| b.count > 0)
            .map(|(k, b)| {
                let start = first + width * i64::try_from(k).unwrap_or(0);
                b.finish(start, start + width)
            })
            .collect()
    }
}

/// The tests of one span of time: how many, and the smallest, mean and
/// largest rate of each direction (`null` where no test ran it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Unix seconds the span starts at.
    pub from: i64,
    /// Unix seconds the span ends before.
    pub to: i64,
    /// Tests in the span.
    pub count: u64,
    /// What clients uploaded (the server received), bits/s.
    pub upload: Option<Spread>,
    /// What clients downloaded (the server sent), bits/s.
    pub download: Option<Spread>,
    /// Medians and quartiles per kind of test (`tcp`, `udp`, `ndt7`,
    /// `probe`), of the kinds the span has.
    pub kinds: BTreeMap<&'static str, KindFigures>,
}

/// Smallest, mean and largest of some rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// The smallest.
    pub min: f64,
    /// The mean.
    pub mean: f64,
    /// The largest.
    pub max: f64,
}

/// An f32 value held as f64, shown as the f32's shortest decimal.
fn shortest(x: f64) -> f64 {
    // The value came from an f32: narrowing it back is exact.
    #[allow(clippy::cast_possible_truncation)]
    widen(x as f32).unwrap_or(x)
}

#[derive(Debug, Default)]
struct Accumulator {
    count: u64,
    upload: Sums,
    download: Sums,
    by_kind: ByKind,
}

#[derive(Debug, Default)]
struct Sums {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Sums {
    fn add(&mut self, x: f32) {
        if x.is_nan() {
            return;
        }
        // Widened exactly here; only the figures answered are rounded.
        let x = f64::from(x);
        if self.n == 0 {
            (self.min, self.max) = (x, x);
        }
        self.n += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn spread(&self) -> Option<Spread> {
        #[allow(clippy::cast_precision_loss)]
        (self.n > 0).then(|| Spread {
            min: shortest(self.min),
            mean: self.sum / self.n as f64,
            max: shortest(self.max),
        })
    }
}

impl Accumulator {
    fn add(&mut self, r: &Record, kind: Kind) {
        self.count += 1;
        self.upload.add(r.receive_bps);
        self.download.add(r.send_bps);
        self.by_kind.add(r, kind);
    }

    fn finish(self, from: i64, to: i64) -> Bucket {
        Bucket {
            from,
            to,
            count: self.count,
            upload: self.upload.spread(),
            download: self.download.spread(),
            kinds: self.by_kind.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ids::LogKey;
    use crate::history::results_store::tests::result;

    fn store() -> ResultsStore {
        let mut store = ResultsStore::new(&[5201, 5202]);
        let tests = [
            (5201, 100, "alice", "TCP", "192.0.2.1", 100.0),
            (5202, 110, "bob", "UDP", "2001:db8::1", 200.0),
            (5201, 120, "alice", "udp", "192.0.2.1", 300.0),
            (5202, 130, "Alice-Laptop", "ndt7", "192.0.2.9", 400.0),
            (5201, 140, "bob", "TCP", "2001:db8::2", 500.0),
        ];
        for (i, (port, t, name, protocol, client, bps)) in tests.into_iter().enumerate() {
            store.push(TestResult {
                id: format!("{port}-1-{i}"),
                name: Some(name.into()),
                protocol: protocol.into(),
                client: Some(client.into()),
                receive_bps: Some(bps),
                send_bps: (bps > 250.0).then_some(bps * 2.0),
                ..result(port, t)
            });
        }
        store
    }

    fn times(results: &[TestResult]) -> Vec<i64> {
        results.iter().map(|r| r.timestamp).collect()
    }

    fn page(filter: Filter, limit: usize, before: Option<&str>) -> Page {
        Page {
            filter,
            limit,
            before: before.map(|b| TestId::parse(b).unwrap()),
        }
    }

    #[test]
    fn pages_are_the_most_recent_oldest_first() {
        let store = store();
        let all = Filter::default();
        assert_eq!(
            times(&store.page(&page(all.clone(), 2, None)).unwrap()),
            [130, 140]
        );
        let older = store.page(&page(all.clone(), 2, Some("5202-1-3"))).unwrap();
        assert_eq!(times(&older), [110, 120]);
        let oldest = store.page(&page(all.clone(), 9, Some("5202-1-1"))).unwrap();
        assert_eq!(times(&oldest), [100]);
        assert_eq!(
            store.page(&page(all, 2, Some("5202-1-99"))),
            Err(QueryError::UnknownBefore("5202-1-99".into()))
        );
    }

    #[test]
    fn every_filter_and_their_combination() {
        let store = store();
        let cases: Vec<(Filter, Vec<i64>)> = vec![
            (
                Filter {
                    port: Some(5202),
                    ..Filter::default()
                },
                vec![110, 130],
            ),
            (
                Filter {
                    name: Some("alice".into()),
                    ..Filter::default()
                },
                vec![100, 120],
            ),
            (
                Filter {
                    name: Some("nobody".into()),
                    ..Filter::default()
                },
                vec![],
            ),
            (
                Filter {
                    since: Some(120.0),
                    ..Filter::default()
                },
                vec![120, 130, 140],
            ),
            (
                Filter {
                    until: Some(120.0),
                    ..Filter::default()
                },
                vec![100, 110, 120],
            ),
            (
                Filter {
                    protocol: Some("UDP".into()),
                    ..Filter::default()
                },
                vec![110, 120],
            ),
            (
                Filter {
                    protocol: Some("NDT7".into()),
                    ..Filter::default()
                },
                vec![130],
            ),
            (
                Filter {
                    family: Some(6),
                    ..Filter::default()
                },
                vec![110, 140],
            ),
            (
                Filter {
                    family: Some(4),
                    ..Filter::default()
                },
                vec![100, 120, 130],
            ),
            (
                Filter {
                    port: Some(5201),
                    name: Some("bob".into()),
                    name_part: Some("B".into()),
                    family: Some(6),
                    since: Some(100.0),
                    until: Some(140.0),
                    protocol: Some("tcp".into()),
                    kind: Some(Kind::Tcp),
                },
                vec![140],
            ),
            // A name is exact; parts of names in any case are `name_part`.
            (
                Filter {
                    name: Some("alice".into()),
                    ..Filter::default()
                },
                vec![100, 120],
            ),
            (
                Filter {
                    name: Some("Alice".into()),
                    ..Filter::default()
                },
                vec![],
            ),
            (
                Filter {
                    name_part: Some("ALI".into()),
                    ..Filter::default()
                },
                vec![100, 120, 130],
            ),
            (
                Filter {
                    name_part: Some("o".into()),
                    ..Filter::default()
                },
                vec![110, 130, 140],
            ),
            (
                Filter {
                    name: Some("alice".into()),
                    name_part: Some("lap".into()),
                    ..Filter::default()
                },
                vec![],
            ),
            (
                Filter {
                    kind: Some(Kind::Udp),
                    ..Filter::default()
                },
                vec![110, 120],
            ),
            (
                Filter {
                    kind: Some(Kind::Probe),
                    ..Filter::default()
                },
                vec![],
            ),
        ];
        for (filter, want) in cases {
            let got = store.page(&page(filter.clone(), 100, None)).unwrap();
            assert_eq!(times(&got), want, "{filter:?}");
            // The record filter and the result filter agree.
            let slow: Vec<_> = store.iter().filter(|r| filter.matches(r)).collect();
            assert_eq!(times(&slow), want, "{filter:?}");
        }
    }

    #[test]
    fn stretches_walk_the_whole_history() {
        let store = store();
        let alice = Filter {
            name: Some("alice".into()),
            ..Filter::default()
        };
        let mut cursor = Cursor::default();
        let (first, done) = store.stretch(&alice, &mut cursor, 1);
        assert_eq!((times(&first), done), (vec![100], false));
        let (rest, done) = store.stretch(&alice, &mut cursor, 10);
        assert_eq!((times(&rest), done), (vec![120], true));
        let (none, done) = store.stretch(&alice, &mut cursor, 10);
        assert_eq!((times(&none), done), (vec![], true));
    }

    /// Port `port`'s test `n` at time `t`, in the file that started at
    /// `filekey`.
    fn logged(store: &mut ResultsStore, port: u16, filekey: i64, n: u64, t: i64) {
        store.push(TestResult {
            id: format!("{port}-{filekey}-{}", n * 1000),
            ..result(port, t)
        });
    }

    #[test]
    fn a_rotation_under_a_walk_makes_it_skip_nothing() {
        // Port 5201's tests sit in a file that rotation will drop, between
        // tests of 5202 that stay.
        let walk = |drop_after: usize, n: usize| {
            let mut store = ResultsStore::new(&[5201, 5202]);
            for t in 0..12 {
                let port = if t % 2 == 0 { 5201 } else { 5202 };
                logged(&mut store, port, 1, t as u64, t);
            }
            let mut cursor = Cursor::default();
            let mut seen = Vec::new();
            let mut stretches = 0;
            loop {
                let (found, done) = store.stretch(&Filter::default(), &mut cursor, n);
                seen.extend(times(&found));
                stretches += 1;
                if stretches == drop_after {
                    // The file becomes .1, then is dropped; a new test comes.
                    store.rotated(LogKey::Port(5201), 1);
                    store.rotated(LogKey::Port(5201), 1);
                    logged(&mut store, 5201, 50, 0, 50);
                }
                if done {
                    return seen;
                }
            }
        };
        for n in 1..6 {
            for drop_after in (1..12).take_while(|d| d * n < 12) {
                let seen = walk(drop_after, n);
                let read = drop_after * n;
                // Everything read before the drop, every 5202 test after it
                // and the new test: nothing skipped, nothing twice.
                let mut want: Vec<i64> = (0..read as i64).collect();
                want.extend((read as i64..12).filter(|t| t % 2 == 1));
                want.push(50);
                assert_eq!(seen, want, "stretches of {n}, dropped after {drop_after}");
            }
        }
    }

    #[test]
    fn buckets_sum_up_spans_of_time() {
        let store = store();
        let buckets = store.buckets(&Filter::default(), 2);
        assert_eq!(buckets.len(), 2);
        assert_eq!(
            (buckets[0].from, buckets[0].to, buckets[0].count),
            (100, 121, 3)
        );
        let up = buckets[0].upload.unwrap();
        assert_eq!((up.min, up.mean, up.max), (100.0, 200.0, 300.0));
        assert_eq!(buckets[0].download.unwrap().max, 600.0);
        // Medians per kind keep TCP and UDP apart.
        let kinds = &buckets[0].kinds;
        assert_eq!(kinds.keys().copied().collect::<Vec<_>>(), ["tcp", "udp"]);
        assert_eq!(kinds["tcp"].upload_bps.unwrap().median, 100.0);
        assert_eq!(kinds["udp"].tests, 2);
        assert_eq!(kinds["udp"].upload_bps.unwrap().median, 250.0);
        assert_eq!(kinds["udp"].download_bps.unwrap().median, 600.0);
        assert_eq!((buckets[1].count, buckets[1].to), (2, 142));
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 5);
        let none = Filter {
            name: Some("nobody".into()),
            ..Filter::default()
        };
        assert!(store.buckets(&none, 10).is_empty());
        // More buckets than seconds: one second each, empty ones left out.
        assert_eq!(store.buckets(&Filter::default(), 1000).len(), 5);
    }
}
