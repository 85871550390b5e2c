//! Files that survive a crash or power loss: written whole under a
//! temporary name, synced, renamed into place, the directory synced;
//! removed or moved with the directories synced after.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `body` to `path` so that after return it is there whole, and
/// after a crash either whole or absent.
pub fn write_durably(path: &Path, body: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_parent(path)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Removes `path` for good (one already gone is fine).
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    sync_parent(path)
}

/// Moves `from` to `to` (in another directory of the same file system),
/// both directories synced: after a crash the file is in one of them.
pub fn move_durably(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_parent(to)?;
    sync_parent(from)
}

/// Makes the entries of `path`'s directory (a rename, an unlink) durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
