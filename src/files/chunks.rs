//! Reading a log file in bounded chunks, each cut just before a line that
//! is exactly `{` (where an entry starts whatever came before it), so a
//! chunk read on its own finds what the whole file read at once does. A
//! 400 MB log costs a chunk of memory, not 400 MB; only an entry bigger
//! than a chunk makes one grow (to hold that entry).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Opens the log file at `path` to be read at start-up; what stops that
/// is a warning naming the file. Only regular files: reading a FIFO would
/// block start-up.
pub fn open_log(path: &Path) -> Result<File, String> {
    let shown = path.display();
    match crate::sys::open_regular(path) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            Err(format!("{shown}: skipped: not a regular file"))
        }
        Err(e) => Err(format!("{shown}: cannot read: {e}")),
    }
}

/// How much of a file is read at a time.
pub const CHUNK: usize = 8 * 1024 * 1024;

/// Where the last line of `bytes` that is exactly `{` starts, if one starts
/// after byte 0.
pub fn last_entry_start(bytes: &[u8]) -> Option<usize> {
    let plain = memchr::memmem::rfind(bytes, b"\n{\n");
    let crlf = memchr::memmem::rfind(bytes, b"\n{\r\n");
    plain.max(crlf).map(|at| at + 1)
}

/// Where the first line of `bytes` after `from` that is exactly `{` starts.
pub fn next_entry_start(bytes: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find_iter(&bytes[from..], b"\n{")
        .map(|i| from + i + 1)
        .find(|&at| matches!(&bytes[at + 1..], [b'\n', ..] | [b'\r', b'\n', ..]))
}

/// `bytes` as text of the same length: a byte that is not UTF-8 becomes
/// `?`, so offsets in the text are offsets in the file.
pub fn text_of(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let mut bytes = e.into_bytes();
            let mut at = 0;
            while let Err(e) = std::str::from_utf8(&bytes[at..]) {
                let bad = at + e.valid_up_to();
                let len = e.error_len().unwrap_or(bytes.len() - bad);
                bytes[bad..bad + len].fill(b'?');
                at = bad + len;
            }
            String::from_utf8(bytes).unwrap_or_default()
        }
    }
}

/// Where the last line that is exactly `{` starts in the first `len`
/// bytes of `file` (0 if none starts after byte 0), read backwards a block
/// at a time: what follows it can be read on its own.
pub fn last_entry_start_in(file: &File, len: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = 64 * 1024;
    // Blocks overlap by three bytes so a `\n{\r\n` across a boundary is seen.
    let mut end = len;
    let mut block = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let want = usize::try_from(end - start).unwrap_or(0);
        block.resize(want, 0);
        file.read_exact_at(&mut block, start)?;
        if let Some(at) = last_entry_start(&block) {
            return Ok(start + at as u64);
        }
        if start == 0 {
            break;
        }
        end = start + 3;
    }
    Ok(0)
}

/// Reads `file` chunk by chunk, handing `each` every chunk's text and its
/// byte offset in what `file` reads, until the end or until `each` returns
/// false.
pub fn each_chunk(
    mut file: impl Read,
    chunk: usize,
    mut each: impl FnMut(u64, &str) -> bool,
) -> io::Result<()> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut base = 0u64;
    let mut end = false;
    while !end {
        let wanted = buffer.len() + chunk;
        let mut filled = buffer.len();
        buffer.resize(wanted, 0);
        while filled < wanted {
            match file.read(&mut buffer[filled..]) {
                Ok(0) => {
                    end = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buffer.truncate(filled);
        // Without a cut the whole buffer is kept for the next read (an
        // entry bigger than a chunk).
        let cut = if end {
            buffer.len()
        } else {
            match last_entry_start(&buffer) {
                Some(cut) => cut,
                None => continue,
            }
        };
        let rest = buffer.split_off(cut);
        let text = text_of(std::mem::replace(&mut buffer, rest));
        if !each(base, &text) {
            return Ok(());
        }
        base += text.len() as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn invalid_bytes_keep_their_place() {
        let text = text_of(b"a\xff\xfeb\xe2\x82".to_vec());
        assert_eq!(text, "a??b??");
        assert_eq!(text_of("é{".as_bytes().to_vec()), "é{");
    }

    #[test]
    fn chunks_cut_before_entries_and_cover_the_file() {
        let entry = "{\n\t\"a\":\t1\n}\n";
        let content = format!("junk\n{}{{\r\n}}\n", entry.repeat(50));
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(content.as_bytes()).unwrap();
        for chunk in [1, 7, 16, 100, 1 << 20] {
            use std::io::Seek;
            file.rewind().unwrap();
            let mut seen = String::new();
            each_chunk(file.try_clone().unwrap(), chunk, |base, text| {
                assert_eq!(base as usize, seen.len());
                assert!(base == 0 || text.starts_with('{'), "{text:?}");
                seen.push_str(text);
                true
            })
            .unwrap();
            assert_eq!(seen, content, "chunk {chunk}");
        }
        assert_eq!(last_entry_start(b"x\n{\n}\n{\r\n"), Some(6));
        assert_eq!(last_entry_start(b"{\n"), None);
        assert_eq!(next_entry_start(b"{\n\n{\n", 0), Some(3));
    }

    #[test]
    fn the_last_entry_start_is_found_from_the_end() {
        let mut file = tempfile::tempfile().unwrap();
        let entry = format!("{{\n\t\"a\":\t\"{}\"\n}}\n", "x".repeat(100_000));
        let content = format!("junk\n{entry}{entry}{{\r\n}}\n");
        file.write_all(content.as_bytes()).unwrap();
        let len = content.len() as u64;
        let second = 5 + entry.len() as u64;
        assert_eq!(last_entry_start_in(&file, len).unwrap(), len - 5);
        assert_eq!(last_entry_start_in(&file, len - 5).unwrap(), second);
        assert_eq!(last_entry_start_in(&file, second).unwrap(), 5);
        assert_eq!(last_entry_start_in(&file, 5).unwrap(), 0);
        assert_eq!(last_entry_start_in(&file, 0).unwrap(), 0);
    }
}
