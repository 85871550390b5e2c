//! The I/O around the protocol: listeners, control connections, data streams.
//!
//! Arrows point down: [`port`] spawns a [`driver`] per control connection;
//! both share what is in [`slot`].
//!
//! - [`auth`]: the RSA private key and users file; `authtoken` checks.
//! - [`calibrate`]: the TCP send method measured at start-up, kept in the
//!   log directory.
//! - [`listen`]: binding listeners with socket2 (dual-stack, per-test options).
//! - [`overlap`]: which tests run at the same time, box-wide (a room of
//!   its own below, shared with ndt7).
//! - [`port`]: one port's accept loop and the routing of new connections.
//! - [`slot`]: port settings, the port context with its cookie-keyed
//!   routing table, test slots, refusals.
//! - [`driver`]: the driver of one test around its session.
//! - [`streams`]: data stream threads.
//! - [`stream_parts`]: what a stream is made of: its I/O method, counters,
//!   payload and pacing (below the threads and the loops that move bytes).
//! - [`tcp_io`]: the TCP stream loops (discarding receive, `sendfile` send).
//! - [`udp`]: the UDP stream handshake, buffers and thread bodies.
//! - [`udp_batch`]: the UDP stream loops, batched (GRO/GSO).
//! - [`udp_peer`]: the drop counter of a UDP stream's other end on this host.

pub mod auth;
pub mod calibrate;
pub mod driver;
pub mod listen;
pub use crate::overlap;
pub mod port;
pub mod slot;
pub mod stream_parts;
pub mod streams;
pub mod tcp_io;
pub mod udp;
pub mod udp_batch;
pub mod udp_peer;
