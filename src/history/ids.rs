//! Test ids: where a test sits in its log, written as text.
//!
//! `<port>-<filekey>-<offset>` for an iperf3 port's log and
//! `ndt7-<filekey>-<offset>` for `ndt7.json` (`probe-…` for `probes.json`):
//! `filekey` is the start
//! timestamp (`start.timestamp.timesecs`) of the first test in the file (0
//! if it has none), `offset` the byte offset of the entry's opening `{`.
//! Neither changes when the file is renamed by rotation or the program
//! restarts, so neither does the id. No I/O here.

use std::fmt;

/// Which log a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogKey {
    /// `port-<PORT>.json` and its rotated copies.
    Port(u16),
    /// `ndt7.json`.
    Ndt7,
    /// `probes.json`: the tests the box ran as the client.
    Probe,
}

/// A parsed test id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestId {
    /// The log.
    pub log: LogKey,
    /// The start timestamp of the file's first test.
    pub filekey: i64,
    /// Byte offset of the entry's `{`.
    pub offset: u64,
}

impl fmt::Display for TestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.log {
            LogKey::Port(port) => write!(f, "{port}-{}-{}", self.filekey, self.offset),
            LogKey::Ndt7 => write!(f, "ndt7-{}-{}", self.filekey, self.offset),
            LogKey::Probe => write!(f, "probe-{}-{}", self.filekey, self.offset),
        }
    }
}

impl TestId {
    /// Parses an id; `None` for anything not of the form above (numbers
    /// as written, no signs but the filekey's, no leading zeros).
    pub fn parse(id: &str) -> Option<TestId> {
        let (log, rest) = id.split_once('-')?;
        let log = if log == "ndt7" {
            LogKey::Ndt7
        } else if log == "probe" {
            LogKey::Probe
        } else {
            let port: u16 = canonical(log)?;
            (port != 0).then_some(LogKey::Port(port))?
        };
        let (filekey, offset) = rest.rsplit_once('-')?;
        let filekey: i64 = canonical(filekey)?;
        let offset: u64 = canonical(offset)?;
        Some(TestId {
            log,
            filekey,
            offset,
        })
    }
}

/// `text` as a number if it is written exactly as the number prints.
fn canonical<T: std::str::FromStr + ToString>(text: &str) -> Option<T> {
    let n: T = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back() {
        for id in [
            "5201-1763767679-0",
            "ndt7-0-12345",
            "65535--5-7",
            "probe-9-0",
        ] {
            assert_eq!(
                TestId::parse(id).map(|i| i.to_string()).as_deref(),
                Some(id)
            );
        }
        let id = TestId::parse("5202-17-4096").unwrap();
        assert_eq!(id.log, LogKey::Port(5202));
        assert_eq!((id.filekey, id.offset), (17, 4096));
    }

    #[test]
    fn malformed_ids_are_none() {
        for id in [
            "",
            "5201",
            "5201-1",
            "0-1-2",
            "65536-1-2",
            "05201-1-2",
            "5201-01-2",
            "5201-1-+2",
            "5201-1--2",
            "x-1-2",
            "5201-1-2-3",
            "ndt7-1",
            "5201-1-18446744073709551616",
        ] {
            assert_eq!(TestId::parse(id), None, "{id}");
        }
    }
}
