//! Whole-history answers streamed: `GET /csv` and `GET /api/results`
//! without `limit=` are both written out as they are read from the store,
//! [`CHUNK_ROWS`] tests at a time under a short read lock, each stretch
//! read and formatted on the blocking pool and fed through a bounded
//! channel into the response body. The async workers (and with them the
//! iperf3 control handling) never format a whole export, and memory per
//! export is a few chunks, whatever the history's size.
//!
//! An export walks the history with a [`Cursor`]: it goes on after the
//! last test it sent, not from a position, so a rotation that drops older
//! tests while it runs makes it skip none. The first bytes (the CSV header,
//! the JSON array's `[`) go out before the store is read at all.
//!
//! Bounds: at most [`MAX_EXPORTS`] exports of either kind at once (the
//! handler answers 503 beyond); a client that stops reading is dropped by
//! the connection's write deadline ([`super::deadline`]), which drops the
//! body, which ends the producer; a producer whose chunk is not taken
//! within [`STALL_LIMIT`] gives up on its own.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tracing::debug;

use super::export;
use crate::history::query::Cursor;
use crate::hub::{Hub, ResultFilter, TestResult};

/// Exports streamed at once, CSV and JSON together.
pub const MAX_EXPORTS: usize = 4;

/// Tests formatted per read of the store: a chunk of rows with their
/// headlines and latency fields is about half a MB, and an export holds a
/// few.
pub const CHUNK_ROWS: usize = 500;

/// Chunks waiting for the client, per export.
const QUEUED_CHUNKS: usize = 2;

/// A producer gives up when its chunk waits this long.
pub const STALL_LIMIT: Duration = Duration::from_secs(30);

/// How an export writes tests out.
pub trait Format: Send + 'static {
    /// What comes before the first test.
    fn head(&mut self) -> io::Result<Vec<u8>>;
    /// `rows`, the next tests in order.
    fn rows(&mut self, rows: &[TestResult]) -> io::Result<Vec<u8>>;
    /// What comes after the last test.
    fn tail(&mut self) -> Vec<u8>;
}

/// The CSV of `GET /csv` ([`export`]).
pub struct Csv;

impl Format for Csv {
    fn head(&mut self) -> io::Result<Vec<u8>> {
        export::csv_header()
    }
    fn rows(&mut self, rows: &[TestResult]) -> io::Result<Vec<u8>> {
        export::csv_rows(rows)
    }
    fn tail(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

/// One JSON array of result objects.
#[derive(Default)]
pub struct JsonArray {
    /// Whether a test has been written.
    started: bool,
}

impl Format for JsonArray {
    fn head(&mut self) -> io::Result<Vec<u8>> {
        Ok(b"[".to_vec())
    }
    fn rows(&mut self, rows: &[TestResult]) -> io::Result<Vec<u8>> {
        let mut chunk = Vec::with_capacity(rows.len() * 512);
        for result in rows {
            if std::mem::replace(&mut self.started, true) {
                chunk.push(b',');
            }
            serde_json::to_writer(&mut chunk, result)?;
        }
        Ok(chunk)
    }
    fn tail(&mut self) -> Vec<u8> {
        b"]".to_vec()
    }
}

/// Every recorded test passing `filter`, oldest first, written as `format`
/// says, as a body stream; the export holds `permit` until it ends. A test
/// recorded while the export runs is in it if the export has not reached
/// the end of the history yet.
pub fn export<F: Format>(
    hub: Arc<Hub>,
    filter: ResultFilter,
    mut format: F,
    permit: OwnedSemaphorePermit,
) -> Chunks {
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    tokio::spawn(async move {
        let _permit = permit;
        let send = |chunk: io::Result<Vec<u8>>| {
            let tx = tx.clone();
            async move {
                let failed = chunk.is_err();
                let sent = tokio::time::timeout(STALL_LIMIT, tx.send(chunk)).await;
                !failed && sent.is_ok_and(|sent| sent.is_ok())
            }
        };
        if !send(format.head()).await {
            return;
        }
        let (mut cursor, mut sent) = (Cursor::default(), 0);
        loop {
            let (hub, filter) = (hub.clone(), filter.clone());
            // Copied under the read lock, formatted after it.
            let read = tokio::task::spawn_blocking(move || {
                let (rows, done) =
                    hub.with_store(|store, _| store.stretch(&filter, &mut cursor, CHUNK_ROWS));
                let bytes = format.rows(&rows);
                (cursor, format, bytes, rows.len(), done)
            })
            .await;
            let Ok((moved, kept, bytes, rows, done)) = read else {
                return;
            };
            (cursor, format) = (moved, kept);
            sent += rows;
            if !send(bytes).await {
                debug!(rows = sent, "dashboard: export ended early");
                return;
            }
            if done {
                let tail = format.tail();
                if !tail.is_empty() {
                    send(Ok(tail)).await;
                }
                return;
            }
        }
    });
    Chunks(rx)
}

/// The receiving end of an export: a stream of body chunks.
#[derive(Debug)]
pub struct Chunks(mpsc::Receiver<io::Result<Vec<u8>>>);

impl futures_util::Stream for Chunks {
    type Item = io::Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_recv(cx)
    }
}
