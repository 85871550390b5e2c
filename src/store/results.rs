//! Every recorded test in memory, oldest first, and the latest per port.

use super::summary::TestResult;

/// All results and the latest-per-port table (which a clear empties).
#[derive(Debug, Default, Clone)]
pub struct ResultsStore {
    all: Vec<TestResult>,
    ports: Vec<u16>,
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

    /// Records a result; it becomes its port's latest.
    pub fn push(&mut self, result: TestResult) {
        let _ = result;
        todo!()
    }

    /// Empties the latest-per-port table; history is kept.
    pub fn clear_latest(&mut self) {
        todo!()
    }

    /// Every result, oldest first.
    pub fn all(&self) -> &[TestResult] {
        &self.all
    }

    /// One entry per port, in port order.
    pub fn latest(&self) -> Vec<Option<&TestResult>> {
        let _ = &self.latest;
        todo!()
    }

    /// The ports, in order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}
