//! `<log-dir>/.index/`: one persisted index ([`crate::files::index`]) per log
//! file, named after the file's identity (device and inode), so a rotation
//! (a rename) keeps a file's index without rewriting it. An index is read
//! only when it still matches its log, written atomically (a temporary
//! file renamed into place, never synced: it is a cache), and removed at
//! start-up once no log has its identity. Deleting the directory is always
//! safe: the logs are then parsed and it is written again.
//!
//! A directory that cannot be written is warned about once; loading goes
//! on without it. Only a regular file is read as an index (a FIFO in its
//! place would block start-up).

use std::collections::HashSet;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::files::index::{
    fingerprint, header, tail_span, write, About, Covered, Identity, FINGERPRINT_SPAN, HEADER_LEN,
};
use crate::history::compact::{Interner, Record};
use crate::history::ids::LogKey;

/// The name of the index directory inside the log directory.
pub const INDEX_DIR: &str = ".index";

/// The largest index accepted for a covered part of `len` bytes of log:
/// every record and text comes from at least as many bytes of log, so
/// anything bigger is not an index of it (and is not read into memory).
fn max_index_len(len: u64) -> u64 {
    len.saturating_mul(4).saturating_add(1 << 20)
}

/// The identity of the file `meta` describes.
pub fn identity(meta: &Metadata) -> Identity {
    Identity {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// The fingerprint of the first `len` bytes of `file`.
pub fn fingerprint_of(file: &File, len: u64) -> io::Result<u64> {
    let mut head = vec![0u8; usize::try_from(len.min(FINGERPRINT_SPAN)).unwrap_or(0)];
    file.read_exact_at(&mut head, 0)?;
    let (at, n) = tail_span(len);
    let mut tail = vec![0u8; usize::try_from(n).unwrap_or(0)];
    file.read_exact_at(&mut tail, at)?;
    Ok(fingerprint(len, &head, &tail))
}

/// The index directory of one log directory.
#[derive(Debug)]
pub struct IndexDir {
    dir: PathBuf,
    state: State,
}

/// Whether indexes are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Read and written.
    On,
    /// A write failed (and was warned about): read, no more writes tried.
    Failed,
    /// Neither read nor written.
    Off,
}

impl IndexDir {
    /// The index directory of the logs in `log_dir` (created when the
    /// first index is written).
    pub fn new(log_dir: &Path) -> IndexDir {
        IndexDir {
            dir: log_dir.join(INDEX_DIR),
            state: State::On,
        }
    }

    /// No index directory: every log is parsed in full.
    pub fn off() -> IndexDir {
        IndexDir {
            dir: PathBuf::new(),
            state: State::Off,
        }
    }

    /// Whether an index written now would be kept (none failed, not off).
    pub fn writes(&self) -> bool {
        self.state == State::On
    }

    /// The index file of the log file with identity `id`.
    pub fn path(&self, id: Identity) -> PathBuf {
        self.dir.join(format!("{}-{}.idx", id.dev, id.ino))
    }

    /// The index of `log`'s file `file` (identity `id`, now `len` bytes
    /// long), if there is one that still holds: its header names this log
    /// and file, the file is at least as long as the part covered, has
    /// the same fingerprint over it, and the next line is exactly `{`;
    /// then it is read whole and checked. `None` otherwise.
    pub fn read(&self, log: LogKey, file: &File, id: Identity, len: u64) -> Option<Covered> {
        if self.state == State::Off {
            return None;
        }
        let mut index = crate::sys::open_regular(&self.path(id)).ok()?;
        let size = index.metadata().ok()?.len();
        let mut head = vec![0u8; HEADER_LEN];
        index.read_exact(&mut head).ok()?;
        let h = header(&head).ok()?;
        let fits = h.log == log
            && h.identity == id
            && h.len < len
            && h.total == size
            && size <= max_index_len(h.len);
        if !fits || !starts_entry(file, h.len) || fingerprint_of(file, h.len).ok()? != h.fingerprint
        {
            return None;
        }
        let mut bytes = head;
        bytes.reserve_exact(usize::try_from(size).ok()?.saturating_sub(HEADER_LEN));
        index.take(size).read_to_end(&mut bytes).ok()?;
        let covered = Covered::decode(&bytes).ok()?;
        (covered.about.log == log && covered.about.identity == id).then_some(covered)
    }

    /// Writes the index of a covered part (`about` it, its `records` with
    /// their `texts`), atomically. The first failure is warned about and
    /// ends writing for this directory.
    pub fn write(&mut self, about: &About, records: &[Record], texts: &Interner) {
        if !self.writes() {
            return;
        }
        if let Err(e) = self.try_write(about, records, texts) {
            self.state = State::Failed;
            tracing::warn!(
                dir = %self.dir.display(),
                error = %e,
                "cannot write the log index; logs are parsed in full at each start"
            );
        }
    }

    fn try_write(&self, about: &About, records: &[Record], texts: &Interner) -> io::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        fs::create_dir_all(&self.dir)?;
        let path = self.path(about.identity);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
        let written = File::create(&tmp)
            .and_then(|file| {
                let mut out = io::BufWriter::with_capacity(256 * 1024, file);
                write(about, records, texts, &mut out)?;
                out.flush()
            })
            .and_then(|()| fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// Removes the index files of logs that are gone (no file in `live`
    /// has their identity) and temporary files left by an interrupted
    /// write.
    pub fn remove_stale(&self, live: &HashSet<Identity>) {
        if self.state == State::Off {
            return;
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let wanted: HashSet<PathBuf> = live.iter().map(|&id| self.path(id)).collect();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if !wanted.contains(&path) && entry.file_type().is_ok_and(|t| t.is_file()) {
                // Another run may have removed it already: harmless.
                let _ = fs::remove_file(&path);
            }
        }
    }
}

/// Whether a line that is exactly `{` starts at `at` in `file`.
fn starts_entry(file: &File, at: u64) -> bool {
    let mut start = [0u8; 3];
    let n = file.read_at(&mut start, at).unwrap_or(0);
    matches!(&start[..n], [b'{', b'\n', ..] | [b'{', b'\r', b'\n'])
}
