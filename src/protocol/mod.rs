//! The iperf3 wire protocol, with no sockets, no tokio and no clock reads.
//!
//! - [`admission`]: who may start a test, per source address: the rate of
//!   tests, and refusals counted for a summary instead of logged each.
//! - [`wire`]: cookie, state bytes, length-prefixed JSON, `SERVER_ERROR`.
//! - [`auth`]: decrypted credentials, clock skew, the authorized-users file.
//! - [`client`]: the client's control-channel state machine, for probes:
//!   events and ticks in, actions out, the same kind of timer table.
//! - [`deadlines`]: the timer table both machines keep.
//! - [`errors`]: iperf3 error codes and their texts.
//! - [`params`]: the client's parameters, decoded and validated.
//! - [`policy`]: server-side limits: duration, bitrate, UDP, client networks.
//! - [`probe_policy`]: what the box may probe (`--probe-allow`), a probe
//!   request within its limits, and retries of busy targets.
//! - [`probe_schedule`]: `--probe-every` specs, their spread over the
//!   interval, turns and busy retries.
//! - [`results_exchange`]: the results documents exchanged at the end of a test.
//! - [`session`]: the control-channel state machine: events and ticks in,
//!   actions out, one timer per kind of wait.
//! - [`udp`]: the UDP datagram header and the receiver's loss/jitter arithmetic.
//! - [`udp_pace`]: an unlimited UDP sender paced to its receiver's drops.

pub mod admission;
pub mod auth;
pub mod client;
pub mod deadlines;
pub mod errors;
pub mod params;
pub mod policy;
pub mod probe_policy;
pub mod probe_schedule;
pub mod results_exchange;
pub mod session;
pub mod udp;
pub mod udp_pace;
pub mod wire;
