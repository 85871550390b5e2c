//! Probes: the box as an iperf3 client. The driver of one test around the
//! client machine ([`crate::protocol::client`]): it connects, performs
//! what the machine asks (writes on the control connection, data streams
//! through the server's [`DataStream`]s, copy-free as the server's),
//! samples the streams, and reports what the machine is waiting for. No
//! protocol decision is taken here.
//!
//! - [`auth`]: the `authtoken` of `--username` with the server's key.
//! - [`connect`]: the data streams (TCP cookie, UDP hello and reply).
//! - [`control`]: reads cut to what the machine expects, and writes.

pub mod auth;
pub mod connect;
pub mod control;
pub mod entry;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::json::{from_value, to_compact, Json};
use crate::protocol::client::{Action, Client, Event, Failure, Limits, Progress};
use crate::protocol::params::{DataPath, Protocol, TestParams};
use crate::protocol::results_exchange::{stream_id, with_signed_retransmits, PeerResults};
use crate::protocol::wire::{Cookie, COOKIE_LEN};
use crate::report::stats::{results_document, Sample, Stats, StreamKind};
use crate::report::test_log::TestLog;
use crate::send_method::SendMethod;
use crate::server::stream_parts::fill_payload;
use crate::server::streams::DataStream;
use crate::sys::os_error_text;
use control::Control;

/// What one direction of a probe moved, as the box measured it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Direction {
    /// Bytes moved after the omit period.
    pub bytes: u64,
    /// Seconds from the data's start (after the omit period) to the end.
    pub seconds: f64,
}

/// UDP figures of one direction: as its receiver counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UdpFigures {
    /// Datagrams lost (after the omit period).
    pub lost: u64,
    /// Datagrams expected: the highest sequence numbers seen.
    pub packets: u64,
    /// Mean smoothed jitter over the streams, seconds.
    pub jitter: f64,
}

impl UdpFigures {
    /// The share of datagrams lost (0 when none were expected).
    pub fn lost_ratio(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.lost as f64 / self.packets as f64
        }
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The test's parameters.
    pub params: TestParams,
    /// Why it failed; `None` for a clean end.
    pub failure: Option<Failure>,
    /// What the box sent (its sending streams).
    pub sent: Direction,
    /// What the box received (its receiving streams).
    pub received: Direction,
    /// Retransmissions of the box's sending TCP streams after the omit
    /// period; `None` without them.
    pub retransmits: Option<u64>,
    /// Mean smoothed RTT of the sending TCP streams at the end, seconds.
    pub rtt: Option<f64>,
    /// UDP: the box's datagrams as the server received them, and the
    /// server's as the box received them.
    pub udp: (Option<UdpFigures>, Option<UdpFigures>),
    /// The server's results document, as checked.
    pub server: Option<PeerResults>,
    /// Wall time from connecting to the end, seconds.
    pub elapsed: f64,
    /// The test as stock's client prints it with `--json` (`start`,
    /// `intervals`, `end`, `error`), with the server's results under
    /// `webperf3.server_results`: what `probes.json` records.
    pub entry: Json,
}

/// A cookie from the system's random source (falling back to the
/// payload generator where there is none).
fn new_cookie() -> Cookie {
    let mut random = [0u8; COOKIE_LEN - 1];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random));
    if read.is_err() {
        fill_payload(&mut random, false);
    }
    Cookie::from_random(random)
}

/// One test's streams and their statistics.
#[derive(Default)]
struct Data {
    streams: Vec<DataStream>,
    /// How the sending TCP streams move bytes.
    send: Option<SendMethod>,
    stats: Option<Stats>,
    /// Samples at the omit end (the baselines), and the last ones.
    base: Vec<Sample>,
    last: Vec<Sample>,
    /// When the data started, and when the omit period ended.
    t0: Option<Instant>,
    from: Option<Instant>,
    ended: Option<Instant>,
    cpu_at_t0: (f64, f64),
    cpu: (f64, f64, f64),
    /// The entry as it grows.
    log: TestLog,
}

impl Data {
    /// Stops every stream (their last counts stay readable).
    fn stop(&mut self) {
        self.streams.iter_mut().for_each(DataStream::stop);
    }

    fn progress(&self) -> Progress {
        let mut p = Progress::default();
        for s in &self.streams {
            let (bytes, blocks) = (s.sample_bytes(), s.counters.blocks.load(Relaxed));
            if s.kind.sender {
                p.sent += bytes;
                p.sent_blocks += blocks;
            } else {
                p.received += bytes;
                p.received_blocks += blocks;
            }
        }
        p
    }

    fn samples(&self) -> Vec<Sample> {
        self.streams.iter().map(DataStream::sample).collect()
    }

    fn start(&mut self, p: &TestParams) -> std::io::Result<()> {
        let now = Instant::now();
        let kinds: Vec<(i64, StreamKind)> =
            self.streams.iter().map(|s| (s.socket_no, s.kind)).collect();
        self.stats = Some(Stats::new(&kinds, p.parallel, now, p.omit > 0));
        self.t0 = Some(now);
        self.from = Some(now);
        self.cpu_at_t0 = crate::sys::cpu_times();
        self.base = vec![Sample::default(); self.streams.len()];
        self.log.on_test_start(p);
        let path = DataPath {
            send_file: self.send != Some(SendMethod::Copy),
            ..p.data_path(false)
        };
        for s in &mut self.streams {
            s.start(p, path, now)?;
        }
        Ok(())
    }

    fn sample(&mut self) {
        let now = Instant::now();
        self.last = self.samples();
        if let Some(stats) = self.stats.as_mut() {
            if let Some((interval, _)) = stats.sample(now, &self.last) {
                self.log.intervals.push(interval);
            }
        }
    }

    fn end_omit(&mut self) {
        let now = Instant::now();
        if let Some(stats) = self.stats.as_mut() {
            stats.end_omit(stats.last_sample_at(), &self.last);
        }
        self.base = self.last.clone();
        self.from = Some(now);
        for s in &self.streams {
            s.counters.restart.store(true, Relaxed);
        }
    }

    /// The end of the test: sending stops (as a stock client's does, so
    /// the server counts nothing sent after our count), the final sample.
    fn end(&mut self) {
        self.streams.iter().for_each(DataStream::stop_sending);
        self.sample();
        let now = Instant::now();
        self.ended = Some(now);
        if let Some(t0) = self.t0 {
            let (u1, s1) = crate::sys::cpu_times();
            let wall = (now - t0).as_secs_f64().max(1e-9);
            let (u, s) = (
                (u1 - self.cpu_at_t0.0) / wall * 100.0,
                (s1 - self.cpu_at_t0.1) / wall * 100.0,
            );
            self.cpu = (u + s, u, s);
        }
    }

    fn congestion(&self, p: &TestParams) -> Option<String> {
        (p.protocol == Protocol::Tcp).then(|| {
            self.streams
                .first()
                .and_then(DataStream::congestion)
                .unwrap_or_else(|| "unknown".into())
        })
    }

    /// The entry of the test as it ended (`failure` its error).
    fn entry(
        &mut self,
        p: &TestParams,
        failure: Option<&Failure>,
        server: Option<&PeerResults>,
    ) -> Json {
        if let (Some(stats), Some(_)) = (&self.stats, self.ended) {
            self.log.end = stats.end_as(self.cpu, self.congestion(p).as_deref(), true);
            if let Some(server) = server {
                let ids: Vec<i64> = (0..self.streams.len()).map(stream_id).collect();
                entry::complete(&mut self.log.end, &server.document, &ids);
            }
        }
        let error = failure.map(|f| format!("error - {f}"));
        let mut ours = Json::obj();
        if let Some(server) = server {
            let document = with_signed_retransmits(&server.document);
            ours.push("server_results", from_value(&document));
        }
        self.log.entry(error.as_deref(), None, None, ours)
    }

    fn results(&self, p: &TestParams) -> Vec<u8> {
        let ids: Vec<i64> = (0..self.streams.len()).map(stream_id).collect();
        let congestion = self.congestion(p);
        match &self.stats {
            Some(stats) => {
                let doc = results_document(stats, &ids, self.cpu, congestion.as_deref(), None);
                to_compact(&doc).into_bytes()
            }
            None => b"{}".to_vec(),
        }
    }

    fn direction(&self, sender: bool) -> Direction {
        let bytes = self
            .streams
            .iter()
            .zip(self.last.iter().zip(&self.base))
            .filter(|(s, _)| s.kind.sender == sender)
            .map(|(_, (last, base))| last.bytes.saturating_sub(base.bytes))
            .sum();
        let seconds = match (self.from, self.ended) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        Direction { bytes, seconds }
    }

    /// The box's receiving UDP streams' figures.
    fn udp_received(&self) -> Option<UdpFigures> {
        let mut out = UdpFigures::default();
        let mut count = 0u32;
        for (s, (last, base)) in self.streams.iter().zip(self.last.iter().zip(&self.base)) {
            let (false, Some(l)) = (s.kind.sender, last.udp) else {
                continue;
            };
            let b = base.udp.unwrap_or_default();
            out.lost += l.lost.saturating_sub(b.lost);
            out.packets += l.packets.saturating_sub(b.packets);
            out.jitter += l.jitter;
            count += 1;
        }
        (count > 0).then(|| UdpFigures {
            jitter: out.jitter / f64::from(count),
            ..out
        })
    }

    fn tcp_figures(&self) -> (Option<u64>, Option<f64>) {
        let infos: Vec<_> = self
            .last
            .iter()
            .zip(&self.base)
            .filter_map(|(l, b)| Some((l.tcp?, b.tcp)))
            .collect();
        if infos.is_empty() {
            return (None, None);
        }
        let retrans = infos
            .iter()
            .map(|(l, b)| {
                u64::from(
                    l.total_retrans
                        .saturating_sub(b.map_or(0, |b| b.total_retrans)),
                )
            })
            .sum();
        let rtt =
            infos.iter().map(|(l, _)| f64::from(l.rtt)).sum::<f64>() / infos.len() as f64 / 1e6;
        (Some(retrans), Some(rtt))
    }
}

/// The server's figures of the streams the box sent on, from its results.
fn server_udp(p: &TestParams, results: &PeerResults) -> Option<UdpFigures> {
    let streams = results.document.get("streams")?.as_array()?;
    let n = |s: &serde_json::Value, key: &str| s.get(key).and_then(serde_json::Value::as_f64);
    let mut out = UdpFigures::default();
    let mut count = 0;
    for i in (0..p.stream_count()).filter(|&i| connect::client_sends(p, i)) {
        let id = stream_id(i as usize);
        let Some(s) = streams
            .iter()
            .find(|s| s.get("id").and_then(serde_json::Value::as_i64) == Some(id))
        else {
            continue;
        };
        let int = |key: &str| n(s, key).unwrap_or(0.0).max(0.0) as u64;
        out.lost += int("errors").saturating_sub(int("omitted_errors"));
        out.packets += int("packets").saturating_sub(int("omitted_packets"));
        out.jitter += n(s, "jitter").unwrap_or(0.0);
        count += 1;
    }
    (count > 0).then(|| UdpFigures {
        jitter: out.jitter / f64::from(count),
        ..out
    })
}

/// Runs one test against `target` with `params`; dropping the future
/// closes every connection.
pub async fn run(target: SocketAddr, params: TestParams, limits: Limits) -> Outcome {
    let host = crate::report::test_log::host_text(&target);
    run_named(target, &host, params, limits).await
}

/// [`run`], the entry naming the target `host` (as it was asked for).
pub async fn run_named(
    target: SocketAddr,
    host: &str,
    params: TestParams,
    limits: Limits,
) -> Outcome {
    run_sending(target, host, params, limits, SendMethod::Sendfile).await
}

/// [`run_named`] with the sending TCP streams moving bytes by `send`: the
/// method the box's calibration chose for its ports, so a probe costs the
/// CPU per byte a served test does.
pub async fn run_sending(
    target: SocketAddr,
    host: &str,
    params: TestParams,
    limits: Limits,
    send: SendMethod,
) -> Outcome {
    let begun = Instant::now();
    let mut data = Data {
        send: Some(send),
        ..Data::default()
    };
    let mut server = None;
    let cookie = new_cookie();
    let now = std::time::SystemTime::now();
    data.log
        .on_connecting(&params, now, (host, target.port()), &cookie.text());
    let failure = drive(target, cookie, &params, limits, &mut data, &mut server).await;
    data.stop();
    let entry = data.entry(&params, failure.as_ref(), server.as_ref());
    let (retransmits, rtt) = data.tcp_figures();
    let udp = match params.protocol {
        Protocol::Udp => (
            server.as_ref().and_then(|r| server_udp(&params, r)),
            data.udp_received(),
        ),
        Protocol::Tcp => (None, None),
    };
    Outcome {
        udp,
        sent: data.direction(true),
        received: data.direction(false),
        params,
        failure,
        retransmits,
        rtt,
        server,
        elapsed: begun.elapsed().as_secs_f64(),
        entry,
    }
}

/// The event loop: the machine's actions performed, the control
/// connection read for what it expects, ticks at its deadlines.
async fn drive(
    target: SocketAddr,
    cookie: Cookie,
    params: &TestParams,
    limits: Limits,
    data: &mut Data,
    server: &mut Option<PeerResults>,
) -> Option<Failure> {
    let mut client = Client::new(Instant::now(), params.clone(), limits);
    let stream = match tokio::time::timeout(limits.reply, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let text = format!("unable to connect to the server: {}", os_error_text(&e));
            return Some(Failure::Local(text));
        }
        Err(_) => return Some(Failure::Timeout("connecting")),
    };
    let mut control = Control::new(stream);
    let mut events = VecDeque::from([Event::Connected]);
    loop {
        while let Some(event) = events.pop_front() {
            for action in client.handle(Instant::now(), event) {
                if let Action::Finish(failure) = action {
                    control.close().await;
                    return failure;
                }
                let step = Step {
                    target,
                    params,
                    cookie,
                    limits,
                };
                events.extend(step.perform(action, &mut control, data, server).await);
            }
        }
        if let Some(e) = control.next_event(client.expect()) {
            events.push_back(e);
            continue;
        }
        let deadline = client
            .deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            read = control.read_more() => match read {
                Ok(0) => events.push_back(control.at_eof(client.expect())),
                Ok(_) => {}
                Err(e) => events.push_back(Event::ReadFailed(os_error_text(&e))),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                events.push_back(Event::Tick(data.progress()));
            }
        }
    }
}

/// What an action needs to be performed.
struct Step<'a> {
    target: SocketAddr,
    params: &'a TestParams,
    cookie: Cookie,
    limits: Limits,
}

impl Step<'_> {
    /// Performs one action; the event it leads to, if any.
    async fn perform(
        &self,
        action: Action,
        control: &mut Control,
        data: &mut Data,
        server: &mut Option<PeerResults>,
    ) -> Vec<Event> {
        let written = match action {
            Action::SendCookie => control.send_bytes(&self.cookie.0).await,
            Action::SendParams(body) => control.send_document(&body).await,
            Action::Send(state) => control.send_state(state).await,
            Action::SendResults => control.send_document(&data.results(self.params)).await,
            Action::ConnectStreams(n) => return self.connect_streams(n, data).await,
            Action::StartTest => {
                return vec![match data.start(self.params) {
                    Ok(()) => Event::Started,
                    Err(e) => Event::Fault(format!("unable to start the streams: {e}")),
                }]
            }
            Action::SampleInterval => {
                data.sample();
                Ok(())
            }
            Action::EndOmit => {
                data.end_omit();
                Ok(())
            }
            Action::EndTest => {
                data.end();
                Ok(())
            }
            Action::KeepServerResults(r) => {
                *server = Some(r);
                Ok(())
            }
            Action::CloseStreams => {
                data.stop();
                Ok(())
            }
            Action::Finish(_) => Ok(()),
        };
        written.err().map(|_| Event::Eof).into_iter().collect()
    }

    /// Connects `n` data streams one after the other.
    async fn connect_streams(&self, n: u32, data: &mut Data) -> Vec<Event> {
        let deadline = Instant::now() + self.limits.streams;
        for i in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            match connect::data_stream(self.target, self.params, self.cookie, i, left).await {
                Ok(s) => {
                    data.log.on_stream(s.socket_no, &s.local, &s.remote);
                    data.streams.push(s);
                }
                Err(e) => {
                    let text = format!("unable to connect a data stream: {}", os_error_text(&e));
                    return vec![Event::Fault(text)];
                }
            }
        }
        // One event per stream, as the machine counts them.
        vec![Event::StreamConnected; n as usize]
    }
}
