//! Every recorded test in memory, oldest first, and the latest per port.
//!
//! Each test is a fixed-size [`Record`] (texts interned once), a result
//! object is built only when one is asked for; the log files the tests sit
//! in are a small table, so a rotation renames them here too and a
//! deleted file takes its tests with it. Holds no I/O: loading the logs
//! fills it at start-up and the hub pushes each new result. Queries over it
//! (filters, pages, buckets) are [`super::query`]'s.

use std::collections::BTreeMap;

use super::compact::{Interner, Record, NONE, NO_FILE};
use super::ids::{LogKey, TestId};
use super::result::TestResult;
use super::runs;

/// [`LogFile::generation`] of a file that no longer exists.
const GONE: u32 = u32::MAX;

/// One log file tests sit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFile {
    /// Whose log.
    pub log: LogKey,
    /// The start timestamp of its first test (0 if none yet).
    pub filekey: i64,
    /// 0 for the live file, `n` for `<name>.json.<n>`.
    pub generation: u32,
}

/// Where a test's entry is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: LogFile,
    /// Byte offset of the entry's `{`.
    pub offset: u64,
}

/// All results and the latest-per-port table (which a clear empties). The
/// two subtests of an ndt7 speed-test run are one result ([`super::runs`]).
#[derive(Debug, Default, Clone)]
pub struct ResultsStore {
    records: Vec<Record>,
    texts: Interner,
    files: Vec<LogFile>,
    ports: Vec<u16>,
    /// Per entry of `ports`: index into `records` of that port's latest.
    latest: Vec<Option<usize>>,
}

impl ResultsStore {
    /// An empty store for these ports (in port order).
    pub fn new(ports: &[u16]) -> ResultsStore {
        ResultsStore {
            ports: ports.to_vec(),
            latest: vec![None; ports.len()],
            ..ResultsStore::default()
        }
    }

    /// Records a result; it becomes its port's latest. A result for a port
    /// this store does not serve is kept in the history only. Returns the
    /// result as the history shows it from now on.
    pub fn push(&mut self, result: TestResult) -> TestResult {
        if let Some(run) = self.join_run(&result) {
            return self.result(run);
        }
        let at = self.push_history(result);
        if let Some(slot) = self.ports.iter().position(|&p| p == self.records[at].port) {
            self.latest[slot] = Some(at);
        }
        self.result(at)
    }

    /// Joins `result`, an ndt7 upload, into the download of its run (see
    /// [`super::runs`]) if the history has it; returns the run's index.
    fn join_run(&mut self, result: &TestResult) -> Option<usize> {
        let up = Record::new(result, NO_FILE, 0, &mut self.texts);
        let down = runs::download_of(&self.records, self.records.len(), &up, &self.texts)?;
        runs::join(&mut self.records[down], &up);
        Some(down)
    }

    /// Records a result in the history without touching the latest table;
    /// returns its index. Its id says which file it sits in; a result
    /// without one (its entry never reached a log) is kept without.
    pub fn push_history(&mut self, result: TestResult) -> usize {
        let (file, offset) = match TestId::parse(&result.id) {
            Some(id) => (self.file(id.log, id.filekey, 0), id.offset),
            None => (NO_FILE, 0),
        };
        self.push_at(&result, file, offset)
    }

    /// Records a result sitting at `offset` of file `file` (from
    /// [`ResultsStore::file`]) in the history; returns its index.
    pub fn push_at(&mut self, result: &TestResult, file: u32, offset: u64) -> usize {
        self.records
            .push(Record::new(result, file, offset, &mut self.texts));
        self.records.len() - 1
    }

    /// Records the tests of a persisted index, `records` with texts
    /// numbered in `texts`, all sitting in file `file`; false (and nothing
    /// recorded) if a record names a text `texts` does not have.
    pub fn push_indexed(&mut self, records: &[Record], texts: &Interner, file: u32) -> bool {
        let words: Vec<u32> = std::iter::once(NONE)
            .chain(texts.iter().map(|(_, t)| self.texts.intern(t)))
            .collect();
        let tags: Vec<u16> = std::iter::once(0)
            .chain(texts.tags().map(|(_, t)| self.texts.intern_tag(t)))
            .collect();
        let before = self.records.len();
        self.records.reserve(records.len());
        for record in records {
            let Some(record) = record.renumber(&words, &tags, file) else {
                self.records.truncate(before);
                return false;
            };
            self.records.push(record);
        }
        true
    }

    /// The number of `log`'s file of `generation` with first test
    /// `filekey`, added if new. Files of other generations are others,
    /// even with the same key (logs written before keys were kept apart).
    pub fn file(&mut self, log: LogKey, filekey: i64, generation: u32) -> u32 {
        let found = self
            .files
            .iter()
            .position(|f| f.log == log && f.filekey == filekey && f.generation == generation);
        let at = found.unwrap_or_else(|| {
            self.files.push(LogFile {
                log,
                filekey,
                generation,
            });
            self.files.len() - 1
        });
        u32::try_from(at).unwrap_or(NO_FILE)
    }

    /// Sorts the history oldest first (stable: equal timestamps keep the
    /// order they were pushed in) and makes `latest` the latest table:
    /// per served port, the file and offset of its latest result. For the
    /// end of loading.
    pub fn sort(&mut self, latest: &BTreeMap<u16, (u32, u64)>) {
        sort_by_time(&mut self.records);
        runs::join_all(&mut self.records, &self.texts);
        // Loading grew the history by doubling: keep only what it holds.
        self.records.shrink_to_fit();
        self.texts.shrink_to_fit();
        self.files.shrink_to_fit();
        self.latest = self
            .ports
            .iter()
            .map(|port| {
                let &(file, offset) = latest.get(port)?;
                self.records
                    .iter()
                    .rposition(|r| r.file == file && r.offset == offset)
            })
            .collect();
    }

    /// `log`'s files were renamed one generation up; those past `keep`
    /// were deleted, and their tests leave the history.
    pub fn rotated(&mut self, log: LogKey, keep: u32) {
        let mut dropped = Vec::new();
        for (i, file) in self.files.iter_mut().enumerate() {
            if file.log == log && file.generation != GONE {
                file.generation += 1;
                if file.generation > keep {
                    file.generation = GONE;
                    dropped.push(u32::try_from(i).unwrap_or(NO_FILE));
                }
            }
        }
        if dropped.is_empty() {
            return;
        }
        let latest: Vec<Option<(u32, u64)>> = self
            .latest
            .iter()
            .map(|slot| slot.map(|i| (self.records[i].file, self.records[i].offset)))
            .collect();
        self.records.retain(|r| !dropped.contains(&r.file));
        // Texts only the dropped tests used go too.
        let mut texts = Interner::default();
        for record in &mut self.records {
            *record = record.reintern(&self.texts, &mut texts);
        }
        self.texts = texts;
        self.records.shrink_to_fit();
        self.latest = latest
            .into_iter()
            .map(|slot| {
                let (file, offset) = slot?;
                self.records
                    .iter()
                    .rposition(|r| r.file == file && r.offset == offset)
            })
            .collect();
    }

    /// Empties the latest-per-port table; history is kept.
    pub fn clear_latest(&mut self) {
        self.latest.iter_mut().for_each(|slot| *slot = None);
    }

    /// The number of results.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The kept records, oldest first.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The log files the records' file numbers name.
    pub fn files(&self) -> &[LogFile] {
        &self.files
    }

    /// The texts the records' numbers name.
    pub fn texts(&self) -> &Interner {
        &self.texts
    }

    /// The result object of record `i`.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn result(&self, i: usize) -> TestResult {
        let record = &self.records[i];
        let mut result = record.result(self.id_of(record), &self.texts);
        let log = self.files.get(record.file as usize).map(|f| f.log);
        if log == Some(LogKey::Probe) {
            // A probe keeps its target where a served test keeps its client.
            result.kind = Some(crate::store::probe_log::KIND);
            result.target = result.client.take();
        }
        result
    }

    /// Every result, oldest first, built one by one.
    pub fn iter(&self) -> impl Iterator<Item = TestResult> + '_ {
        (0..self.records.len()).map(|i| self.result(i))
    }

    /// The id of `record` (empty if its entry is in no log).
    pub fn id_of(&self, record: &Record) -> String {
        match self.files.get(record.file as usize) {
            Some(file) => TestId {
                log: file.log,
                filekey: file.filekey,
                offset: record.offset,
            }
            .to_string(),
            None => String::new(),
        }
    }

    /// The index of the test `id` names, if the history has it.
    pub fn find(&self, id: &TestId) -> Option<usize> {
        let file = self
            .files
            .iter()
            .position(|f| f.log == id.log && f.filekey == id.filekey && f.generation != GONE)?;
        let file = u32::try_from(file).ok()?;
        self.records
            .iter()
            .rposition(|r| r.file == file && r.offset == id.offset)
    }

    /// Where record `i`'s entry is on disk.
    pub fn location(&self, i: usize) -> Option<Location> {
        let record = self.records.get(i)?;
        let file = *self.files.get(record.file as usize)?;
        (file.generation != GONE).then_some(Location {
            file,
            offset: record.offset,
        })
    }

    /// How many tests each port has in the history.
    pub fn counts(&self) -> BTreeMap<u16, u64> {
        let mut counts = BTreeMap::new();
        for record in &self.records {
            *counts.entry(record.port).or_default() += 1;
        }
        counts
    }

    /// One entry per port, in port order.
    pub fn latest(&self) -> Vec<Option<TestResult>> {
        self.latest
            .iter()
            .map(|slot| slot.map(|i| self.result(i)))
            .collect()
    }

    /// The latest result of `port`, if it is served and has one.
    pub fn latest_of(&self, port: u16) -> Option<TestResult> {
        let slot = self.ports.iter().position(|&p| p == port)?;
        self.latest[slot].map(|i| self.result(i))
    }

    /// The ports, in order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}

/// Sorts `records` oldest first, stable, without the buffer of half the
/// records a stable sort of them takes (tens of MB at a million tests):
/// the order is worked out on (start, place) pairs, unique so an unstable
/// sort of them is as stable as a stable one, then applied in place,
/// cycle by cycle.
fn sort_by_time(records: &mut [Record]) {
    if records.windows(2).all(|w| w[0].timestamp <= w[1].timestamp) {
        return;
    }
    let Ok(n) = u32::try_from(records.len()) else {
        records.sort_by_key(|r| r.timestamp);
        return;
    };
    let mut order: Vec<(i64, u32)> = (0..n).map(|i| (records[i as usize].timestamp, i)).collect();
    order.sort_unstable();
    // Place k takes the record now at `from[k]`.
    let mut from: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
    const DONE: u32 = u32::MAX;
    for start in 0..records.len() {
        if from[start] == DONE {
            continue;
        }
        let first = records[start];
        let mut k = start;
        loop {
            let src = from[k] as usize;
            from[k] = DONE;
            if src == start {
                records[k] = first;
                break;
            }
            records[k] = records[src];
            k = src;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal result of `port` at `timestamp` (1 Gbit/s received).
    pub(crate) fn result(port: u16, timestamp: i64) -> TestResult {
        TestResult {
            id: String::new(),
            port,
            timestamp,
            name: None,
            title: None,
            client: None,
            protocol: "TCP".into(),
            duration: 1.0,
            streams: 1,
            reverse: false,
            bidir: false,
            send_bps: None,
            receive_bps: Some(1e9),
            bytes_sent: 0,
            bytes_received: 125_000_000,
            retransmits: None,
            jitter_ms: None,
            lost_percent: None,
            min_rtt_ms: None,
            error: None,
            overlapped: None,
            server_cpu_percent: None,
            cpu_temp_c: None,
            throttled: None,
            kind: None,
            target: None,
            target_bps: None,
            link_bps: None,
            limited_by: None,
            headline: String::new(),
            latency: crate::store::result::Latency::default(),
        }
    }

    fn timestamps(latest: Vec<Option<TestResult>>) -> Vec<Option<i64>> {
        latest
            .iter()
            .map(|r| r.as_ref().map(|r| r.timestamp))
            .collect()
    }

    #[test]
    fn push_makes_latest_and_keeps_history() {
        let mut store = ResultsStore::new(&[5201, 5202]);
        assert_eq!(store.latest(), vec![None, None]);
        store.push(result(5202, 1));
        store.push(result(5201, 2));
        store.push(result(5202, 3));
        assert_eq!(timestamps(store.latest()), vec![Some(2), Some(3)]);
        assert_eq!(store.len(), 3);
        assert_eq!(store.latest_of(5202).map(|r| r.timestamp), Some(3));
        assert_eq!(store.latest_of(9999), None);
    }

    #[test]
    fn clear_empties_latest_only() {
        let mut store = ResultsStore::new(&[5201]);
        store.push(result(5201, 1));
        store.clear_latest();
        assert_eq!(store.latest(), vec![None]);
        assert_eq!(store.len(), 1);
        store.push(result(5201, 2));
        assert_eq!(timestamps(store.latest()), vec![Some(2)]);
    }

    #[test]
    fn foreign_ports_are_history_only() {
        let mut store = ResultsStore::new(&[5201]);
        store.push(result(6000, 1));
        store.push_history(result(5201, 2));
        assert_eq!(store.len(), 2);
        assert_eq!(store.latest(), vec![None]);
        assert_eq!(store.ports(), &[5201]);
        assert_eq!(store.counts().get(&6000), Some(&1));
    }

    fn with_id(port: u16, timestamp: i64, id: &str) -> TestResult {
        TestResult {
            id: id.into(),
            ..result(port, timestamp)
        }
    }

    #[test]
    fn ids_find_tests_and_rotation_keeps_them() {
        let mut store = ResultsStore::new(&[5201, 5202]);
        store.push(with_id(5201, 10, "5201-10-0"));
        store.push(with_id(5202, 11, "5202-11-0"));
        store.push(with_id(5201, 12, "5201-10-900"));
        let shown = store.push(TestResult {
            name: Some("no log".into()),
            ..result(5202, 13)
        });
        assert_eq!(shown.id, "");
        let id = TestId::parse("5201-10-900").unwrap();
        let at = store.find(&id).unwrap();
        assert_eq!(store.result(at).timestamp, 12);
        assert_eq!(store.location(at).unwrap().file.generation, 0);

        // Port 5201's log rotates: the file becomes .1, a new one starts.
        store.rotated(LogKey::Port(5201), 1);
        assert_eq!(store.location(at).unwrap().file.generation, 1);
        assert_eq!(store.result(at).id, "5201-10-900");
        store.push(with_id(5201, 20, "5201-20-0"));
        assert_eq!(store.len(), 5);
        // Again: the first file passes `keep` and its tests go; the latest
        // (in the new file) stays.
        store.rotated(LogKey::Port(5201), 1);
        assert_eq!(store.find(&id), None);
        assert_eq!(store.len(), 3);
        assert_eq!(timestamps(store.latest()), vec![Some(20), Some(13)]);
        assert_eq!(
            store.latest_of(5202).unwrap().name.as_deref(),
            Some("no log")
        );
        assert_eq!(
            store.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec!["5202-11-0", "", "5201-20-0"]
        );
    }

    #[test]
    fn sorting_by_time_is_stable() {
        let mut texts = Interner::default();
        // Timestamps with many ties, in a scrambled order; the offset
        // tells the original place.
        let mut records: Vec<Record> = (0..500u64)
            .map(|i| {
                let t = i64::try_from((i * 7919) % 13).unwrap();
                Record::new(&result(5201, t), 0, i, &mut texts)
            })
            .collect();
        let mut want = records.clone();
        want.sort_by_key(|r| r.timestamp);
        sort_by_time(&mut records);
        let key = |r: &Record| (r.timestamp, r.offset);
        assert_eq!(
            records.iter().map(key).collect::<Vec<_>>(),
            want.iter().map(key).collect::<Vec<_>>()
        );
    }

    #[test]
    fn sort_orders_by_time_and_sets_latest() {
        let mut store = ResultsStore::new(&[5201]);
        let file = store.file(LogKey::Port(5201), 30, 0);
        store.push_at(&result(5201, 30), file, 0);
        store.push_at(&result(5201, 10), file, 500);
        store.push_at(&result(5201, 30), file, 900);
        store.sort(&BTreeMap::from([(5201, (file, 500))]));
        let order: Vec<_> = store.iter().map(|r| r.id).collect();
        assert_eq!(order, vec!["5201-30-500", "5201-30-0", "5201-30-900"]);
        assert_eq!(timestamps(store.latest()), vec![Some(10)]);
    }
}
