//! webperf3: an iperf3-compatible test server with a live web dashboard.
//!
//! Module map, in the order of the layers (a module imports only from
//! modules listed after it):
//!
//! - [`cli`]: the command line (clap), validated once into a
//!   [`config::Config`].
//! - [`app`]: the one place that wires things together: binds what the
//!   configuration names, loads the logs, runs the iperf3 ports and the
//!   dashboard on bound listeners until shutdown.
//! - [`http`]: the dashboard: warp routes, embedded frontend, websocket, CSV,
//!   metrics, `GET /probe` and the `--probe-every` schedules.
//! - [`probe`]: the box as an iperf3 client: the driver of one test
//!   around the client machine, its streams the server's.
//! - [`server`]: the I/O around the protocol: per-port listeners, the control
//!   connection driver, TCP and UDP data streams, socket options.
//! - [`health`]: CPU temperature and Pi throttling during a test.
//! - [`forward`]: `--forward`: recorded tests queued on disk and sent to
//!   other systems (JSON over HTTP, Loki), with retries and back-off.
//! - [`hub`]: the live state the dashboard shows (results, port status) and the
//!   broadcast of events to websocket clients.
//! - [`store`]: the per-port log files (append, rotation, tolerant read, an
//!   entry read back by its id) and the compact in-memory history derived
//!   from them, with its pages, filters and buckets; the ndt7 log beside them.
//! - [`overlap`]: which tests (iperf3 or ndt7) move data at the same time.
//! - [`link`]: the speed of the network interface a test ran on,
//!   noted in its log entry when it is recorded.
//! - [`report`]: the server's JSON output (stock `iperf3 --json` layout): the
//!   cJSON-compatible printer and the builder of `start`/`intervals`/`end`.
//! - [`config`]: the configuration of a run as plain values (ports,
//!   addresses, limits, dashboard and authentication settings).
//! - [`send_method`]: how sending TCP streams move bytes, decided without
//!   I/O: a calibration's measurements in, the method (and why) out.
//! - [`ndt7`]: M-Lab's ndt7 speed test without sockets or clock reads:
//!   message sizes, time limits, measurements, the result document.
//! - [`protocol`]: the iperf3 wire protocol with no sockets and no clock reads:
//!   framing, state bytes, parameters, results, the control state machines
//!   of the server and of the client (probes), policy, authentication
//!   checks, error codes and the UDP datagram header.
//! - [`sys`]: small OS facts: uname, process CPU time, TCP_INFO, the
//!   open-files limit, page-aligned buffers.
//! - [`shutdown`]: the shutdown token and its reason, as one value.
//! - [`locks`]: poison-tolerant locking of shared state.
//! - [`diagnostics`]: `tracing` to standard error, its level from the
//!   environment.

pub mod app;
pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod forward;
pub mod health;
pub mod http;
pub mod hub;
pub mod link;
pub mod locks;
pub mod ndt7;
pub mod overlap;
pub mod probe;
pub mod protocol;
pub mod report;
pub mod send_method;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod sys;

#[cfg(test)]
mod testing;
