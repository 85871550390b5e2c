//! One test's log entry read back from its file, exactly as it stands
//! there (byte for byte), for the detail view: found by the test's id,
//! read from the entry's offset, never kept in memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::analysis::test_result::TestResult;
use crate::files::log_dir::LogDir;
use crate::history::ids::TestId;
use crate::history::results_store::ResultsStore;

/// The largest entry read back: a 24-hour test logging every second is
/// well under it; anything bigger is refused rather than buffered.
pub const MAX_ENTRY: usize = 64 * 1024 * 1024;

/// How much is read at a time while looking for the entry's end.
const STEP: usize = 64 * 1024;

/// Why an entry cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The file cannot be opened or read.
    #[error("cannot read the log: {0}")]
    Io(#[from] io::Error),
    /// What is at the offset is not a whole JSON object (the file was
    /// changed by something else).
    #[error("the log no longer holds this test's entry")]
    Gone,
    /// The entry is bigger than [`MAX_ENTRY`].
    #[error("the entry is larger than {MAX_ENTRY} bytes")]
    TooLarge,
}

/// The test `id` names, if the history has it: its result, and its log
/// file opened (so a rotation that renames or deletes the file afterwards
/// does not change what is read) with the entry's offset. Call with the
/// log's writer held, so no rotation is half done.
pub fn open(
    store: &ResultsStore,
    logs: &LogDir,
    id: &TestId,
) -> Option<(TestResult, io::Result<File>, u64)> {
    let at = store.find(id)?;
    let location = store.location(at)?;
    let path = logs.log_path(location.file.log, location.file.generation);
    Some((
        store.result(at),
        crate::sys::open_regular(&path),
        location.offset,
    ))
}

/// The entry whose `{` is at `offset` of `file`: a pretty-printed entry up
/// to its line that is exactly `}`, or an object on a line of its own. It
/// is checked to be one valid JSON object.
pub fn read_entry(file: &File, offset: u64) -> Result<String, EntryError> {
    let text = read_entry_text(file, offset)?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(text),
        _ => Err(EntryError::Gone),
    }
}

/// [`read_entry`] without the check that the text is one JSON object, for
/// a reader that parses it anyway (and so checks it in the same pass).
pub fn read_entry_text(file: &File, offset: u64) -> Result<String, EntryError> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut searched = 0;
    loop {
        if buffer.len() > MAX_ENTRY {
            return Err(EntryError::TooLarge);
        }
        let start = buffer.len();
        buffer.resize(start + STEP, 0);
        let n = read_at(file, &mut buffer[start..], offset + start as u64)?;
        buffer.truncate(start + n);
        let eof = n == 0;
        if let Some(end) = entry_end(&buffer, searched, eof) {
            buffer.truncate(end);
            break;
        }
        if eof {
            return Err(EntryError::Gone);
        }
        // The end marker may straddle reads: look again from a little back.
        searched = buffer.len().saturating_sub(3);
    }
    String::from_utf8(buffer).map_err(|_| EntryError::Gone)
}

/// Where the entry at the start of `bytes` ends (one past its `}`), looking
/// from `from` on; `eof`: `bytes` is all there is.
fn entry_end(bytes: &[u8], from: usize, eof: bool) -> Option<usize> {
    if bytes.first() != Some(&b'{') {
        // Not an entry at all: nothing more to read.
        return Some(0);
    }
    let pretty = match bytes.get(1..3) {
        Some([b'\n', _]) | Some([b'\r', b'\n']) => true,
        Some(_) => false,
        None if eof => bytes.get(1) == Some(&b'\n'),
        None => return None,
    };
    if !pretty {
        let line = memchr::memchr(b'\n', &bytes[from..]).map(|i| from + i);
        let end = line.or(eof.then_some(bytes.len()))?;
        let trimmed = bytes[..end].trim_ascii_end();
        return Some(trimmed.len());
    }
    memchr::memmem::find_iter(&bytes[from..], b"\n}")
        .map(|i| from + i + 2)
        .find(|&end| match bytes.get(end..end + 2) {
            Some([b'\n', _]) | Some([b'\r', b'\n']) => true,
            Some(_) => false,
            None => eof || bytes.get(end) == Some(&b'\n'),
        })
}

/// Reads what there is at `offset` into `buffer` (all of it, or up to the
/// end of the file).
pub(crate) fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn entries_read_back_byte_for_byte() {
        let pretty = "{\n\t\"a\":\t{\n\t\t\"b\":\t\"}\"\n\t}\n}";
        let crlf = "{\r\n\t\"a\":\t1\r\n}";
        let text = format!("junk\n{pretty}\n{{}}\n{{\"c\": 2}}  \r\n{crlf}\r\n{pretty}");
        let f = file(&text);
        let at = |s: &str, n: usize| text.match_indices(s).nth(n).unwrap().0 as u64;
        assert_eq!(read_entry(&f, at(pretty, 0)).unwrap(), pretty);
        assert_eq!(read_entry(&f, at("{\"c\"", 0)).unwrap(), "{\"c\": 2}");
        assert_eq!(read_entry(&f, at(crlf, 0)).unwrap(), crlf);
        // The last entry, with no line end after it.
        assert_eq!(read_entry(&f, at(pretty, 1)).unwrap(), pretty);
        assert!(matches!(read_entry(&f, 0), Err(EntryError::Gone)));
        assert!(matches!(read_entry(&f, 9999), Err(EntryError::Gone)));
        // Cut short: no closing line.
        let f = file("{\n\t\"a\":\t1\n");
        assert!(matches!(read_entry(&f, 0), Err(EntryError::Gone)));
    }

    #[test]
    fn entries_longer_than_a_read() {
        let long = format!("{{\n\t\"a\":\t\"{}\"\n}}", "x".repeat(3 * STEP + 1));
        let f = file(&format!("{long}\n{long}\n"));
        assert_eq!(read_entry(&f, 0).unwrap(), long);
        assert_eq!(read_entry(&f, long.len() as u64 + 1).unwrap(), long);
    }
}
