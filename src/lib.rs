//! webperf3: an iperf3-compatible test server with a live web dashboard.
//!
//! Module map (data flows top to bottom):
//!
//! - [`cli`]: the command line, validated once into a [`cli::Config`].
//! - [`app`]: binds nothing itself; takes bound listeners and a shutdown token
//!   and runs the iperf3 ports and the dashboard together.
//! - [`protocol`]: the iperf3 wire protocol with no sockets and no clock reads:
//!   framing, state bytes, parameters, results, the control state machine,
//!   error codes and the UDP datagram header.
//! - [`report`]: the server's JSON output (stock `iperf3 --json` layout): the
//!   cJSON-compatible printer and the builder of `start`/`intervals`/`end`.
//! - [`server`]: the I/O around the protocol: per-port listeners, the control
//!   connection driver, TCP and UDP data streams, socket options.
//! - [`sys`]: small OS facts: uname, process CPU time, TCP_INFO.
//! - [`health`]: CPU temperature and Pi throttling during a test.
//! - [`store`]: the per-port log files (append, tolerant read) and the
//!   in-memory results derived from them.
//! - [`hub`]: the live state the dashboard shows (results, port status) and the
//!   broadcast of events to websocket clients.
//! - [`http`]: warp routes, embedded frontend, websocket, CSV, metrics.
//! - [`shutdown`]: the shutdown token and its reason, as one value.
//! - [`locks`]: poison-tolerant locking of shared state.
//! - [`diagnostics`]: `tracing` to standard error, its level from the
//!   environment.

pub mod app;
pub mod cli;
pub mod diagnostics;
pub mod health;
pub mod http;
pub mod hub;
pub mod locks;
pub mod protocol;
pub mod report;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod sys;

#[cfg(test)]
mod testing;
