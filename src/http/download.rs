//! Big answers streamed: `GET /csv` is written out as it is read from the
//! store, [`CHUNK_ROWS`] rows at a time under a short read lock, by a
//! blocking-pool thread that feeds a bounded channel into the response body.
//! The async workers (and with them the iperf3 control handling) never
//! format a whole export, and memory per export is a few chunks, whatever
//! the history's size.
//!
//! Bounds: at most [`MAX_EXPORTS`] exports at once (the handler answers 503
//! beyond); a client that stops reading is dropped by the connection's write
//! deadline ([`super::deadline`]), which drops the body, which ends the
//! producer; a producer whose chunk is not taken within [`STALL_LIMIT`]
//! gives up on its own.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tracing::debug;

use super::export;
use crate::hub::Hub;

/// Exports streamed at once.
pub const MAX_EXPORTS: usize = 4;

/// Rows formatted per read of the store.
pub const CHUNK_ROWS: usize = 2000;

/// Chunks waiting for the client, per export.
const QUEUED_CHUNKS: usize = 2;

/// A producer gives up when its chunk waits this long.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// The CSV of every recorded result, oldest first, as a body stream; the
/// export holds `permit` until it ends.
pub fn csv(hub: Arc<Hub>, permit: OwnedSemaphorePermit) -> Chunks {
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let send = |chunk: io::Result<Vec<u8>>| {
            runtime
                .block_on(tokio::time::timeout(STALL_LIMIT, tx.send(chunk)))
                .is_ok_and(|sent| sent.is_ok())
        };
        if !send(export::csv_header()) {
            return;
        }
        let mut from = 0;
        loop {
            // Copied under the read lock, formatted after it.
            let rows: Vec<_> = hub.with_store(|store, _| {
                let end = store.len().min(from + CHUNK_ROWS);
                (from..end).map(|i| store.result(i)).collect()
            });
            let count = rows.len();
            if count == 0 {
                break;
            }
            let bytes = export::csv_rows(&rows);
            from += count;
            let failed = bytes.is_err();
            if !send(bytes) || failed {
                debug!(rows = from, "dashboard: CSV export ended early");
                break;
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
