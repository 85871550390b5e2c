//! Every recorded test in memory, oldest first, and the latest per port.
//!
//! Holds no I/O: loading the logs fills it at start-up and the hub pushes each
//! new result.

use super::result::TestResult;

/// All results and the latest-per-port table (which a clear empties).
#[derive(Debug, Default, Clone)]
pub struct ResultsStore {
    all: Vec<TestResult>,
    ports: Vec<u16>,
    /// Per entry of `ports`: index into `all` of that port's latest result.
    latest: Vec<Option<usize>>,
}

impl ResultsStore {
    /// An empty store for these ports (in port order).
    pub fn new(ports: &[u16]) -> ResultsStore {
        ResultsStore {
            all: Vec::new(),
            ports: ports.to_vec(),
            latest: vec![None; ports.len()],
        }
    }

    /// Records a result; it becomes its port's latest. A result for a port
    /// this store does not serve is kept in the history only.
    pub fn push(&mut self, result: TestResult) {
        let slot = self.ports.iter().position(|&p| p == result.port);
        self.all.push(result);
        if let Some(slot) = slot {
            self.latest[slot] = Some(self.all.len() - 1);
        }
    }

    /// Records a result in the history without touching the latest table
    /// (loading old logs, where the latest is decided per file).
    pub fn push_history(&mut self, result: TestResult) {
        self.all.push(result);
    }

    /// Empties the latest-per-port table; history is kept.
    pub fn clear_latest(&mut self) {
        self.latest.iter_mut().for_each(|slot| *slot = None);
    }

    /// Every result, oldest first.
    pub fn all(&self) -> &[TestResult] {
        &self.all
    }

    /// One entry per port, in port order.
    pub fn latest(&self) -> Vec<Option<&TestResult>> {
        self.latest
            .iter()
            .map(|slot| slot.and_then(|i| self.all.get(i)))
            .collect()
    }

    /// The latest result of `port`, if it is served and has one.
    pub fn latest_of(&self, port: u16) -> Option<&TestResult> {
        let slot = self.ports.iter().position(|&p| p == port)?;
        self.latest[slot].and_then(|i| self.all.get(i))
    }

    /// The ports, in order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
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
        }
    }

    #[test]
    fn push_makes_latest_and_keeps_history() {
        let mut store = ResultsStore::new(&[5201, 5202]);
        assert_eq!(store.latest(), vec![None, None]);
        store.push(result(5202, 1));
        store.push(result(5201, 2));
        store.push(result(5202, 3));
        let latest: Vec<_> = store
            .latest()
            .iter()
            .map(|r| r.map(|r| r.timestamp))
            .collect();
        assert_eq!(latest, vec![Some(2), Some(3)]);
        assert_eq!(store.all().len(), 3);
        assert_eq!(store.latest_of(5202).map(|r| r.timestamp), Some(3));
        assert_eq!(store.latest_of(9999), None);
    }

    #[test]
    fn clear_empties_latest_only() {
        let mut store = ResultsStore::new(&[5201]);
        store.push(result(5201, 1));
        store.clear_latest();
        assert_eq!(store.latest(), vec![None]);
        assert_eq!(store.all().len(), 1);
        store.push(result(5201, 2));
        assert_eq!(store.latest()[0].map(|r| r.timestamp), Some(2));
    }

    #[test]
    fn foreign_ports_are_history_only() {
        let mut store = ResultsStore::new(&[5201]);
        store.push(result(6000, 1));
        store.push_history(result(5201, 2));
        assert_eq!(store.all().len(), 2);
        assert_eq!(store.latest(), vec![None]);
        assert_eq!(store.ports(), &[5201]);
    }
}
