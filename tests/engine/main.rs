//! Integration tests of the iperf3 engine against the real stock `iperf3`
//! client on loopback: our server runs in-process on ports bound to
//! `[::]:0`, the client is the `iperf3` binary on PATH.

#[cfg(feature = "auth")]
mod auth;
mod compat;
mod copyfree;
mod daemon;
mod faults;
mod harness;
mod limits;
mod load;
mod logs;
mod process;
mod tcp;
mod udp;
