//! The kind of a recorded test, as the history's filters, the CSV and the
//! charts keep them apart: an iperf3 TCP test, an iperf3 UDP test, a
//! browser's ndt7 test, or a probe the box ran as a client. Worked out
//! from a record's protocol tag and its log file, through a table built
//! once per question (no text is compared per test). No I/O here.

use super::compact::Record;
use super::ids::LogKey;
use super::results::ResultsStore;

/// The kind of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An iperf3 TCP test the box served.
    Tcp,
    /// An iperf3 UDP test the box served (paced to its `-b`).
    Udp,
    /// A browser's ndt7 test.
    Ndt7,
    /// A test the box ran as the client (`/probe`, `--probe-every`).
    Probe,
}

impl Kind {
    /// Every kind, in order.
    pub const ALL: [Kind; 4] = [Kind::Tcp, Kind::Udp, Kind::Ndt7, Kind::Probe];

    /// Its name in queries, the CSV and answers: `tcp`, `udp`, `ndt7`, `probe`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Udp => "udp",
            Kind::Ndt7 => "ndt7",
            Kind::Probe => "probe",
        }
    }

    /// The kind `name` names (any case).
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// The kind of a test of `protocol` (a result's), a probe or not.
    pub fn of_protocol(protocol: &str, probe: bool) -> Kind {
        if probe {
            Kind::Probe
        } else if protocol.eq_ignore_ascii_case("UDP") {
            Kind::Udp
        } else if protocol.eq_ignore_ascii_case("ndt7") {
            Kind::Ndt7
        } else {
            Kind::Tcp
        }
    }
}

/// The kinds of one store's records: per protocol tag and per file.
#[derive(Debug, Clone)]
pub struct Kinds {
    /// Per tag number: the kind of a test of that protocol.
    by_tag: Vec<Kind>,
    /// Per file number: the file is the probes' log.
    probe_files: Vec<bool>,
}

impl Kinds {
    /// The table for `store` as it is now.
    pub fn new(store: &ResultsStore) -> Kinds {
        let texts = store.texts();
        let mut by_tag = vec![Kind::Tcp; 1];
        for (n, tag) in texts.tags() {
            let n = usize::from(n);
            if by_tag.len() <= n {
                by_tag.resize(n + 1, Kind::Tcp);
            }
            by_tag[n] = Kind::of_protocol(tag, false);
        }
        let probe_files = store
            .files()
            .iter()
            .map(|f| f.log == LogKey::Probe)
            .collect();
        Kinds {
            by_tag,
            probe_files,
        }
    }

    /// The kind of `record`.
    pub fn of(&self, record: &Record) -> Kind {
        if self
            .probe_files
            .get(record.file as usize)
            .copied()
            .unwrap_or(false)
        {
            return Kind::Probe;
        }
        self.by_tag
            .get(usize::from(record.protocol))
            .copied()
            .unwrap_or(Kind::Tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
            assert_eq!(Kind::parse(&k.name().to_uppercase()), Some(k));
        }
        assert_eq!(Kind::parse("icmp"), None);
        assert_eq!(Kind::of_protocol("UDP", true), Kind::Probe);
        assert_eq!(Kind::of_protocol("ndt7", false), Kind::Ndt7);
    }
}
