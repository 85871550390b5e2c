//! A write deadline on a dashboard connection: a write (or flush) that makes
//! no progress for the limit fails with `TimedOut`, so a client that stops
//! reading — mid-export, mid-page or on a websocket — is dropped instead of
//! pinning its connection, its buffers and its export slot forever.
//!
//! Wraps the socket below hyper, so every response and upgraded websocket
//! on the connection is covered; reads pass straight through (their
//! deadlines are the header timeout and the websocket's idle limit).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream whose writes must make progress within a time limit.
#[derive(Debug)]
pub struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    /// Armed when a write first waits; dropped when one makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    /// `inner` with writes that fail after `limit` without progress.
    pub fn new(inner: T, limit: Duration) -> WriteDeadline<T> {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// What a write that just returned `poll` means, with the deadline.
    fn check<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing within the write deadline",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_reader_that_stops_fails_the_write_after_the_limit() {
        let (near, mut far) = tokio::io::duplex(1024);
        let limit = Duration::from_millis(200);
        let mut w = WriteDeadline::new(near, limit);
        // Progress keeps it going: the far side reads what is written.
        for _ in 0..8 {
            w.write_all(&[7; 1024]).await.unwrap();
            let mut buf = [0; 1024];
            far.read_exact(&mut buf).await.unwrap();
        }
        // Then nobody reads: the buffer fills and the write fails after
        // the limit (and not much later).
        let start = std::time::Instant::now();
        let err = w.write_all(&[7; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= limit, "{:?}", start.elapsed());
        assert!(start.elapsed() < limit * 20, "{:?}", start.elapsed());
        drop(far);
    }
}
