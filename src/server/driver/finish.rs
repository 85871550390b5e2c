//! The end of a test: the server's results document for the client, and
//! the finished log entry, handed to the hub in one call once everything
//! the test held is let go.

use std::sync::Arc;
use std::time::Duration;

use super::{Overlap, Routes, Test};
use crate::json::{self, Json};
use crate::protocol::params::Protocol;
use crate::protocol::results_exchange::{stream_id, with_signed_retransmits};
use crate::report::stats::results_document;
use crate::server::streams::data_path_json;

/// How long a client told why its test ends (while data still flows) gets
/// to read it and hang up before its streams are stopped.
const GOODBYE: Duration = Duration::from_secs(1);

impl Test {
    /// The server's results document (with our log as `server_output` when
    /// the client asked for it).
    pub(super) fn results_document(&self) -> Json {
        let p = self.params();
        let ids: Vec<i64> = (0..self.streams.len()).map(stream_id).collect();
        let server_output = p
            .is_some_and(|p| p.get_server_output)
            .then(|| self.log.body());
        let tcp = p.is_some_and(|p| p.protocol == Protocol::Tcp);
        let Some(m) = &self.measuring else {
            return Json::obj();
        };
        let congestion = tcp.then(|| m.congestion.as_deref().unwrap_or("unknown"));
        results_document(&m.stats, &ids, m.cpu, congestion, server_output)
    }

    /// Our additions to the stock log entry.
    fn our_fields(&self) -> Json {
        let mut ours = Json::obj();
        if let Some(v) = self.params().and_then(|p| p.client_version.clone()) {
            ours.push("client_version", v);
        }
        if let Some(user) = &self.user {
            ours.push("user", user.clone());
        }
        let measuring = self.measuring.as_ref();
        if let Overlap::After(overlapped) = self.overlap {
            let cpu = measuring.map_or(0.0, |m| m.cpu.0);
            ours.push("overlapped", overlapped);
            ours.push("health", self.health.to_json(cpu));
            // The cores the CPU figure is a share of (see `analysis::verdict`).
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            ours.push("cpus", cpus);
        }
        let stream_cpu = measuring.map_or(&[][..], |m| &m.stream_cpu);
        if !stream_cpu.is_empty() {
            let per_stream = stream_cpu.iter().map(|&(socket, percent)| {
                Json::obj()
                    .with("socket", socket)
                    .with("percent", (percent * 10.0).round() / 10.0)
            });
            ours.push("stream_cpu_percent", Json::Arr(per_stream.collect()));
        }
        if let Some(tcp) = self.tcp_send.to_json() {
            ours.push("tcp_send", tcp);
        }
        if let Some(tcp) = self.tcp_receive.to_json() {
            ours.push("tcp_receive", tcp);
        }
        if let Some(why) = &self.refused {
            ours.push("refused", why.as_str());
        }
        if let Some(doc) = &self.client_results {
            // Stock 3.12 sends a receiving stream's -1 as 2^64 - 1.
            let doc = with_signed_retransmits(doc);
            ours.push("client_results", json::from_value(&doc));
        }
        let choice = measuring.map(|m| &m.send_choice);
        if let Some(path) = data_path_json(&self.streams, self.ctx.settings.copy, choice) {
            ours.push("data_path", path);
        }
        // Read back from the first TCP stream's socket: every stream of a
        // test gets the same options.
        if let Some(nodelay) = self.streams.iter().find_map(|s| s.tcp_nodelay()) {
            ours.push("tcp_nodelay", nodelay);
        }
        if self.intervals_dropped > 0 {
            ours.push("intervals_dropped", self.intervals_dropped);
        }
        ours
    }

    /// Lets go of everything the test holds on its port: the streams stop,
    /// the listener gets its own options back, the slot is freed and the
    /// dashboard told the port is idle. A client that just had its results
    /// may start its next test at once; only the log entry is left. Called
    /// once the results are exchanged, and again (doing nothing twice) when
    /// the test finishes.
    pub(super) async fn free_port(&mut self) {
        for s in &mut self.streams {
            s.stop();
        }
        self.routes = Routes::default();
        self.overlap.end();
        if let Some(task) = self.udp_accept.take() {
            task.abort();
        }
        // Before the slot goes: the next test's listener options are not
        // undone by this one's.
        self.restore_listener().await;
        self.slot.release();
        if std::mem::take(&mut self.announced) {
            self.ctx.hub.test_ended(self.ctx.port);
        }
    }

    /// Frees the port (if that was not done yet) and records the log entry
    /// with `error` (none for a clean end). The driver's task lasts until
    /// the entry is written, so shutdown waits for it.
    pub(super) async fn finish(&mut self, error: Option<String>) {
        if self.measuring.is_some() && !self.streams_stopped {
            // The test ends while data still flows (server shutdown, an
            // error, a limit): give the client a moment to read why and hang
            // up before its streams break under it.
            self.reader.await_goodbye(GOODBYE).await;
        }
        self.free_port().await;
        if let (Some(e), Some(_)) = (&error, self.params()) {
            tracing::info!(error = %e, "test ended");
        }
        if self.unlogged {
            return;
        }
        let p = self.params();
        let mut entry = self.log.entry(
            error.as_deref(),
            p.and_then(|p| p.title.as_deref()),
            p.and_then(|p| p.extra_data.as_deref()),
            self.our_fields(),
        );
        let hub = Arc::clone(&self.ctx.hub);
        let port = self.ctx.port;
        let span = tracing::Span::current();
        // The append is one write to local storage; keep it off the reactor.
        let record = move || {
            span.in_scope(|| {
                crate::link::note(&mut entry);
                hub.record(port, &entry);
            })
        };
        let _ = tokio::task::spawn_blocking(record).await;
    }
}
