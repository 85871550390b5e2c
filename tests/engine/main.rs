//! Integration tests of the iperf3 engine against the real stock `iperf3`
//! client on loopback: our server runs in-process on ports bound to
//! `[::]:0`, the client is the `iperf3` binary on PATH; the binary itself
//! as a user runs it, on a port it picks (`--port 0`); and ndt7 on the
//! dashboard's port against M-Lab's `ndt7-client`. Support code shared
//! with the dashboard tests and the benches is in `tests/support`.

#[cfg(feature = "auth")]
mod auth;
mod bufferbloat;
mod compat;
mod copyfree;
mod faults;
mod harness;
mod history;
mod hostile;
mod latency;
mod limits;
mod load;
mod logs;
mod ndt7;
mod probe;
mod process;
mod sendpath;
#[path = "../support/mod.rs"]
mod support;
mod tcp;
mod udp;
mod verdict;
