//! Support code shared by every test target (`tests/engine`,
//! `tests/dashboard`) and the benches: the `webperf3` binary run as a child
//! process, stock `iperf3` clients and servers, headless Chromium driven
//! over the DevTools protocol, a tiny blocking HTTP client, strict log
//! reading, and waiting on conditions with a deadline.
//!
//! It holds no assertions about the program's behaviour; those stay in the
//! tests. Each target uses part of it, hence the `dead_code` allowance.

#![allow(dead_code)]

pub mod browser;
pub mod daemon;
pub mod http;
pub mod iperf3;
pub mod logs;
pub mod ndt7;
pub mod netns;
pub mod ports;
pub mod process;
pub mod tools;
pub mod wait;
