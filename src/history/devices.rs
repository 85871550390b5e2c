//! Devices: the tests of each name side by side (`GET /api/devices`).
//! Per name (tests without one together, as `null`): how many tests, the
//! last result, and over the last 7 and 30 days the medians of download
//! (what the box sent), upload (what it received), latency idle and under
//! load with the number of tests; for one device, a per-day series of medians with the
//! kinds of test kept apart.
//!
//! Which tests count: a device's tests are the ones the box served
//! (iperf3 and ndt7); probes are the box's own and are left out. The
//! period medians are of capacity tests only: TCP and ndt7 tests not
//! paced by `-b` and not ended by an error ([`crate::history::medians`]), since a
//! UDP test (always paced) shows the rate it asked for, not what the path
//! carries; the period's `tests` counts every test. One pass over the
//! compact records; memory is the figures of the tests in the periods
//! (four bytes a figure) and one small entry per name. No I/O here.

use std::collections::HashMap;

use chrono::{Duration, Local, NaiveDate, TimeZone};
use serde::Serialize;

use crate::analysis::test_result::TestResult;
use crate::history::compact::NONE;
use crate::history::kinds::{Kind, Kinds};
use crate::history::medians::{
    is_capacity, latency_ms, loaded_latency_ms, median, ByKind, KindFigures,
};
use crate::history::results_store::ResultsStore;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The most days a device's series may cover.
pub const MAX_DAYS: u32 = 366;

/// The figures of one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// The median of what the box sent (the device downloaded), bits/s.
    pub download_bps: Option<f64>,
    /// The median of what the box received (the device uploaded), bits/s.
    pub upload_bps: Option<f64>,
    /// The median round trip, ms ([`crate::history::medians::latency_ms`]).
    pub latency_ms: Option<f64>,
    /// The median round trip under load, ms
    /// ([`crate::history::medians::loaded_latency_ms`]).
    pub loaded_latency_ms: Option<f64>,
    /// Tests in the period (of any kind).
    pub tests: u64,
}

/// One name's tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    /// The name (`--extra-data`, ndt7's `name=`); `None` for tests without.
    pub name: Option<String>,
    /// Its tests in the history.
    pub tests: u64,
    /// Its most recent test.
    pub last: TestResult,
    /// The last 7 days.
    pub days_7: Period,
    /// The last 30 days.
    pub days_30: Period,
    /// One device asked for: its days, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<Day>>,
}

/// One day of a device's series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// The box's local date, `YYYY-MM-DD`.
    pub date: String,
    /// The figures of each kind tested that day (`tcp`, `udp`, `ndt7`);
    /// empty on a day without tests.
    pub kinds: std::collections::BTreeMap<&'static str, KindFigures>,
}

/// Figures gathered for one period.
#[derive(Debug, Default)]
struct Gathered {
    tests: u64,
    download: Vec<f32>,
    upload: Vec<f32>,
    latency: Vec<f32>,
    loaded_latency: Vec<f32>,
}

impl Gathered {
    fn add(&mut self, r: &crate::history::compact::Record, kind: Kind) {
        self.tests += 1;
        let keep = |to: &mut Vec<f32>, x: f32| {
            if x.is_finite() && x >= 0.0 {
                to.push(x);
            }
        };
        if matches!(kind, Kind::Tcp | Kind::Ndt7) && is_capacity(r) {
            keep(&mut self.download, r.send_bps);
            keep(&mut self.upload, r.receive_bps);
        }
        keep(&mut self.latency, latency_ms(r));
        keep(&mut self.loaded_latency, loaded_latency_ms(r));
    }

    fn finish(mut self) -> Period {
        Period {
            download_bps: median(&mut self.download),
            upload_bps: median(&mut self.upload),
            latency_ms: median(&mut self.latency),
            loaded_latency_ms: median(&mut self.loaded_latency),
            tests: self.tests,
        }
    }
}

/// One name while the records are read.
#[derive(Debug, Default)]
struct Entry {
    tests: u64,
    last: usize,
    days_7: Gathered,
    days_30: Gathered,
}

/// Which devices to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// Every name.
    All,
    /// The name given (exact), with its series over this many days.
    One(String, u32),
}

impl ResultsStore {
    /// The devices `which` asks for, as of `now` (unix seconds): every
    /// name ordered by name (`null` last), or the one asked for (none if
    /// it has no test).
    pub fn devices(&self, which: &Which, now: i64) -> Vec<Device> {
        let kinds = Kinds::new(self);
        let only = match which {
            Which::All => None,
            Which::One(name, _) => match self.texts().find(name) {
                Some(n) => Some(n),
                None => return Vec::new(),
            },
        };
        let (from_7, from_30) = (now - 7 * DAY, now - 30 * DAY);
        let mut names: HashMap<u32, Entry> = HashMap::new();
        for (i, r) in self.records().iter().enumerate() {
            if only.is_some_and(|n| n != r.name) {
                continue;
            }
            let kind = kinds.of(r);
            if kind == Kind::Probe {
                continue;
            }
            let entry = names.entry(r.name).or_default();
            entry.tests += 1;
            // Records are in time order: the later one is the last.
            entry.last = i;
            if r.timestamp >= from_30 {
                entry.days_30.add(r, kind);
                if r.timestamp >= from_7 {
                    entry.days_7.add(r, kind);
                }
            }
        }
        let mut devices: Vec<Device> = names
            .into_iter()
            .map(|(name, e)| Device {
                name: (name != NONE).then(|| self.texts().get(name).unwrap_or("").to_string()),
                tests: e.tests,
                last: self.result(e.last),
                days_7: e.days_7.finish(),
                days_30: e.days_30.finish(),
                series: None,
            })
            .collect();
        devices.sort_by(|a, b| match (&a.name, &b.name) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) => x.to_lowercase().cmp(&y.to_lowercase()).then(x.cmp(y)),
        });
        if let (Which::One(_, days), Some(n), Some(device)) = (which, only, devices.first_mut()) {
            device.series = Some(self.series(n, &kinds, *days, now));
        }
        devices
    }

    /// The last `days` local days up to `now` of the tests named `name`:
    /// the figures of each kind per day, every day present.
    fn series(&self, name: u32, kinds: &Kinds, days: u32, now: i64) -> Vec<Day> {
        let days = days.clamp(1, MAX_DAYS);
        let today = local_date(now);
        let first = today - Duration::days(i64::from(days) - 1);
        // A day starts at most 26 h before its date's noon: a margin for
        // any offset of the local time zone.
        let earliest = now - (i64::from(days) + 1) * DAY;
        let mut by_day: Vec<ByKind> = vec![ByKind::default(); days as usize];
        for r in self
            .records()
            .iter()
            .filter(|r| r.name == name && r.timestamp >= earliest)
        {
            let kind = kinds.of(r);
            if kind == Kind::Probe {
                continue;
            }
            let day = (local_date(r.timestamp) - first).num_days();
            if let Some(slot) = usize::try_from(day).ok().and_then(|d| by_day.get_mut(d)) {
                slot.add(r, kind);
            }
        }
        by_day
            .into_iter()
            .enumerate()
            .map(|(i, figures)| Day {
                date: (first + Duration::days(i64::try_from(i).unwrap_or(0)))
                    .format("%Y-%m-%d")
                    .to_string(),
                kinds: figures.finish(),
            })
            .collect()
    }
}

/// The box's local date at `t` (unix seconds).
fn local_date(t: i64) -> NaiveDate {
    match Local.timestamp_opt(t, 0).earliest() {
        Some(d) => d.date_naive(),
        None => chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.date_naive())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::results_store::tests::result;

    fn named(
        name: Option<&str>,
        t: i64,
        protocol: &str,
        down: Option<f64>,
        up: Option<f64>,
    ) -> TestResult {
        TestResult {
            name: name.map(str::to_string),
            protocol: protocol.into(),
            send_bps: down,
            receive_bps: up,
            target_bps: (protocol == "UDP").then_some(5e7),
            ..result(5201, t)
        }
    }

    #[test]
    fn medians_per_name_over_the_periods() {
        let now = 1_800_000_000;
        let mut store = ResultsStore::new(&[5201]);
        let day = |d: i64| now - d * DAY;
        for (name, t, proto, down, up) in [
            (Some("alice"), day(40), "TCP", Some(1e6), None),
            (Some("alice"), day(20), "TCP", Some(3e8), None),
            (Some("alice"), day(2), "TCP", Some(9e8), None),
            (Some("alice"), day(1), "TCP", None, Some(5e8)),
            (Some("alice"), day(1), "UDP", None, Some(5e7)),
            (Some("bob"), day(3), "ndt7", Some(1e8), None),
            (None, day(1), "TCP", None, Some(7e8)),
        ] {
            store.push(named(name, t, proto, down, up));
        }
        let all = store.devices(&Which::All, now);
        let names: Vec<_> = all.iter().map(|d| d.name.clone()).collect();
        assert_eq!(names, [Some("alice".into()), Some("bob".into()), None]);
        let alice = &all[0];
        assert_eq!(alice.tests, 5);
        assert_eq!(alice.last.protocol, "UDP");
        assert_eq!(alice.days_7.tests, 3);
        assert_eq!(alice.days_7.download_bps, Some(9e8));
        // The UDP test's paced rate is not the upload's capacity.
        assert_eq!(alice.days_7.upload_bps, Some(5e8));
        assert_eq!(alice.days_30.tests, 4);
        assert_eq!(alice.days_30.download_bps, Some(6e8));
        assert!(alice.series.is_none());
        assert_eq!(all[1].days_7.download_bps, Some(1e8));

        let one = store.devices(&Which::One("alice".into(), 7), now);
        assert_eq!(one.len(), 1);
        let series = one[0].series.as_ref().unwrap();
        assert_eq!(series.len(), 7);
        assert_eq!(
            series[6].date,
            local_date(now).format("%Y-%m-%d").to_string()
        );
        let with_tests: usize = series.iter().filter(|d| !d.kinds.is_empty()).count();
        assert!(with_tests >= 2, "{series:?}");
        let udp: Vec<_> = series.iter().filter_map(|d| d.kinds.get("udp")).collect();
        assert_eq!(udp.len(), 1);
        assert_eq!(udp[0].upload_bps.unwrap().median, 5e7);
        assert!(store
            .devices(&Which::One("nobody".into(), 7), now)
            .is_empty());
    }

    #[test]
    fn latency_is_idle_where_measured_and_loaded_the_worse_direction() {
        use crate::analysis::test_result::Latency;
        let now = 1_800_000_000;
        let mut store = ResultsStore::new(&[5201]);
        let test = |t, min_rtt, idle, down, up| TestResult {
            min_rtt_ms: min_rtt,
            latency: Latency {
                latency_idle_ms: idle,
                latency_down_ms: down,
                latency_up_ms: up,
                ..Latency::default()
            },
            ..named(Some("alice"), now - t, "TCP", Some(1e8), None)
        };
        // A run: idle 20 ms though its smallest RTT was 12.
        store.push(test(30, Some(12.0), Some(20.0), Some(80.0), Some(60.0)));
        // An iperf3 -R test: no idle figure, loaded down only.
        store.push(test(20, Some(2.0), None, Some(9.5), None));
        // An upload: loaded up only.
        store.push(test(10, Some(15.0), None, None, Some(30.0)));
        let all = store.devices(&Which::All, now);
        let week = &all[0].days_7;
        // Medians of 20, 2, 15 (not 12, 2, 15) and of 80, 9.5, 30.
        assert_eq!(week.latency_ms, Some(15.0));
        assert_eq!(week.loaded_latency_ms, Some(30.0));
        let one = store.devices(&Which::One("alice".into(), 1), now);
        let tcp = &one[0].series.as_ref().unwrap()[0].kinds["tcp"];
        assert_eq!(tcp.latency_ms.unwrap().median, 15.0);
        assert_eq!(tcp.loaded_latency_ms.unwrap().median, 30.0);
        assert_eq!(tcp.loaded_latency_ms.unwrap().low, 9.5);
    }
}
