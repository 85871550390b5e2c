//! The control-channel state machine: events in (with the time they
//! happened), actions out, and the next deadline. Every phase that waits on
//! the client has a timer from [`Limits`], so no client can hold a port
//! forever; the data phase adds the interval, omit, grace and idle timers.
//! The driver sleeps until [`Session::deadline`] and then reports
//! [`Event::Tick`] with the stream counters; every rule that needs a clock
//! (the bitrate cap, the omit end, broken and stalled streams, timeouts)
//! is decided here, with the time as a parameter. With authentication
//! required, the parameters are judged (decoded, checked against the
//! policy) only once the driver reports the client authenticated, so a
//! stranger learns nothing of the server's limits.
//!
//! Files: `events.rs` (the events, actions, phases and tick counters),
//! `timers.rs` (the timer table and the timing limits), this file (the
//! machine), `tests.rs` and `props.rs` (simulated-clock and property tests).

mod events;
mod timers;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use events::{Action, BufferSocket, Counters, Event, Expect, Phase};
pub use timers::{Limits, Timer, TimerTable, INTERVAL, OMIT_SLACK};

use super::errors::{self, ErrorCode};
use super::params::{authtoken_of, TestParams};
use super::policy::{Policy, RateWindow};
use super::results_exchange::check_results;
use super::wire::{Cookie, State};

/// The control-channel state machine of one test.
#[derive(Debug)]
pub struct Session {
    /// Where the test stands.
    phase: Phase,
    /// Timing limits.
    limits: Limits,
    /// One deadline per kind of wait.
    timers: TimerTable,
    /// The parameters, once accepted.
    params: Option<TestParams>,
    /// The cookie, once received.
    cookie: Option<Cookie>,
    /// Data streams connected so far.
    streams: u32,
    /// Received and sent totals at the last tick (progress is new bytes).
    last_counts: (u64, u64),
    /// When the last interval was sampled, and the bytes moved by then.
    last_interval: Option<(Instant, u64)>,
    /// Recent interval totals, against `--server-bitrate-limit`.
    rate_window: RateWindow,
    /// A broken stream was seen at the last interval tick.
    broken_seen: bool,
    /// `EndTest` was asked for.
    ended: bool,
    /// What tests may do.
    policy: Policy,
    /// Clients must authenticate before their parameters are judged.
    auth_required: bool,
    /// The parameters document, while its client authenticates.
    pending_params: Option<Vec<u8>>,
}

impl Session {
    /// A session whose control connection was accepted at `now`.
    pub fn new(now: Instant, limits: Limits) -> Session {
        let mut s = Session {
            phase: Phase::Cookie,
            limits,
            timers: TimerTable::default(),
            params: None,
            cookie: None,
            streams: 0,
            last_counts: (0, 0),
            last_interval: None,
            rate_window: RateWindow::default(),
            broken_seen: false,
            ended: false,
            policy: Policy::default(),
            auth_required: false,
            pending_params: None,
        };
        s.enter(Phase::Cookie, now);
        s
    }

    /// Applies the server's policy to the parameters of this test.
    pub fn with_policy(mut self, policy: Policy) -> Session {
        self.policy = policy;
        self
    }

    /// Requires authentication before the parameters are judged: the
    /// session then asks for [`Action::Authenticate`] first.
    pub fn with_auth(mut self, required: bool) -> Session {
        self.auth_required = required;
        self
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The parameters, once accepted.
    pub fn params(&self) -> Option<&TestParams> {
        self.params.as_ref()
    }

    /// The cookie, once received.
    pub fn cookie(&self) -> Option<Cookie> {
        self.cookie
    }

    /// Data streams accepted so far.
    pub fn streams_connected(&self) -> u32 {
        self.streams
    }

    /// The timer table (what is armed, and for when).
    pub fn timers(&self) -> &TimerTable {
        &self.timers
    }

    /// Whether the session waits for the first byte of a cookie, parameters
    /// or results (the driver then reports [`Event::ReadStarted`] when bytes
    /// of it arrive).
    pub fn awaiting_first_byte(&self) -> bool {
        matches!(self.phase, Phase::Cookie | Phase::Params | Phase::Results)
            && self.timers.is_armed(Timer::ReadStart)
    }

    /// What to read next.
    pub fn expect(&self) -> Expect {
        match self.phase {
            Phase::Cookie => Expect::Cookie,
            Phase::Params => Expect::Params,
            Phase::Streams | Phase::Running | Phase::Done => Expect::StateByte,
            Phase::Results => Expect::Results,
            Phase::Preparing | Phase::Finished => Expect::Nothing,
        }
    }

    /// When the driver must report [`Event::Tick`] if nothing else happens:
    /// the earliest armed timer.
    pub fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Judges the buffer sizes a socket got for this test's window (or the
    /// OS error text of setting them): the fault to report, if any. A
    /// listener that could not be set up fails with `MSS` when only an MSS
    /// was asked for, else with `SET_BUF`; buffers smaller than the asked
    /// window fail with `SET_BUF2`.
    pub fn buffer_fault(
        &self,
        sizes: &Result<(u32, u32), String>,
        socket: BufferSocket,
    ) -> Option<Event> {
        let (window, mss) = self.params.as_ref().map_or((0, 0), |p| (p.window, p.mss));
        match sizes {
            Err(os) => {
                let code = match socket {
                    BufferSocket::Listener if mss > 0 && window == 0 => ErrorCode::MSS,
                    _ => ErrorCode::SET_BUF,
                };
                Some(Event::Fault(code, Some(os.clone())))
            }
            Ok((snd, rcv)) if window > 0 && (*snd < window || *rcv < window) => {
                Some(Event::Fault(ErrorCode::SET_BUF2, None))
            }
            Ok(_) => None,
        }
    }

    /// Moves to `phase` at `now` and arms its timers.
    fn enter(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        let l = self.limits;
        Timer::PHASE.into_iter().for_each(|t| self.timers.stop(t));
        if phase != Phase::Running {
            Timer::RUNNING.into_iter().for_each(|t| self.timers.stop(t));
        }
        match phase {
            Phase::Cookie | Phase::Params | Phase::Results => {
                self.timers.set(Timer::ReadStart, now + l.read_start);
                self.timers.set(Timer::ReadTotal, now + l.read_total);
            }
            Phase::Done => self.timers.set(Timer::ReadTotal, now + l.read_total),
            Phase::Streams => self.timers.set(Timer::Streams, now + l.streams),
            Phase::Running => {
                let Some(p) = self.params.as_ref() else {
                    return;
                };
                if p.time > 0 {
                    let run = Duration::from_secs(u64::from(p.time) + u64::from(p.omit));
                    self.timers.set(Timer::Grace, now + run + l.grace);
                }
                if p.server_receives() {
                    self.timers.set(Timer::RecvIdle, now + l.rcv_timeout);
                }
                if p.server_sends() {
                    self.timers.set(Timer::SendIdle, now + l.rcv_timeout);
                }
            }
            Phase::Preparing => {}
            Phase::Finished => self.timers.stop_all(),
        }
    }

    /// Ends the test with `error`, closing `end` first if the test ran.
    fn finish(&mut self, now: Instant, error: Option<String>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Running && !self.ended {
            self.ended = true;
            out.push(Action::EndTest);
        }
        out.push(Action::Finish(error));
        self.enter(Phase::Finished, now);
        out
    }

    /// Reports `code` to the client and ends the test with its text.
    fn fail(&mut self, now: Instant, code: ErrorCode, os: Option<String>) -> Vec<Action> {
        let text = code.log_text(os.as_deref());
        self.fail_with(now, code, text)
    }

    /// Reports `code` to the client and ends the test with `text` in the log.
    fn fail_with(&mut self, now: Instant, code: ErrorCode, text: String) -> Vec<Action> {
        let mut out = vec![Action::SendError(code, 0)];
        out.extend(self.finish(now, Some(text)));
        out
    }

    /// Feeds one event that happened at `now`; returns what to do.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        use Phase as P;
        if self.phase == P::Finished {
            return Vec::new();
        }
        match (self.phase, event) {
            (_, Event::Shutdown(text)) => {
                // The summary is taken at the signal; the client then hears
                // SERVER_TERMINATE while its streams are still open, so it
                // reports the termination rather than a broken stream.
                let mut out = self.finish(now, Some(text.to_string()));
                out.insert(out.len() - 1, Action::Send(State::ServerTerminate));
                out
            }
            (_, Event::Fault(code, os)) => self.fail(now, code, os),
            (P::Cookie, Event::Connected(ip)) => self.connected(now, ip),
            (P::Cookie, Event::Cookie(cookie)) => {
                self.cookie = Some(cookie);
                self.enter(P::Params, now);
                vec![Action::Send(State::ParamExchange)]
            }
            (P::Params, Event::Params(body)) if self.auth_required => {
                // Nothing about the parameters is told before the client
                // authenticates: not even that they break a limit.
                let token = authtoken_of(&body);
                self.pending_params = Some(body);
                self.enter(P::Preparing, now);
                vec![Action::Authenticate(token)]
            }
            (P::Params, Event::Params(body)) => self.judge_params(now, &body),
            (P::Preparing, Event::Authenticated) if self.pending_params.is_some() => {
                let body = self.pending_params.take().unwrap_or_default();
                self.judge_params(now, &body)
            }
            (P::Preparing, Event::Busy) => {
                let mut out = vec![Action::Send(State::AccessDenied)];
                out.extend(self.finish(now, Some(errors::SERVER_BUSY.to_string())));
                out
            }
            (P::Preparing, Event::Prepared) => {
                self.enter(P::Streams, now);
                vec![Action::Send(State::CreateStreams)]
            }
            (P::Streams, Event::StreamConnected) => {
                self.streams += 1;
                let want = self.params.as_ref().map_or(1, TestParams::stream_count);
                if self.streams < want {
                    return Vec::new();
                }
                self.enter(P::Running, now);
                vec![
                    Action::Send(State::TestStart),
                    Action::Send(State::TestRunning),
                    Action::StartTest,
                ]
            }
            (P::Running, Event::Started) => {
                self.timers.set(Timer::Interval, now + INTERVAL);
                let omit = self.params.as_ref().map_or(0, |p| p.omit);
                if omit > 0 {
                    let at = now + Duration::from_secs(u64::from(omit));
                    self.timers.set(Timer::OmitEnd, at);
                }
                self.last_counts = (0, 0);
                self.last_interval = Some((now, 0));
                Vec::new()
            }
            (P::Cookie | P::Params | P::Results, Event::ReadStarted) => {
                self.timers.stop(Timer::ReadStart);
                Vec::new()
            }
            (P::Results, Event::ClientResults(body)) => {
                let count = self.params.as_ref().map_or(1, TestParams::stream_count);
                match check_results(&body, count as usize) {
                    Ok(results) => {
                        self.enter(P::Done, now);
                        vec![
                            Action::KeepClientResults(results),
                            Action::SendResults,
                            Action::FreePort,
                            Action::Send(State::DisplayResults),
                        ]
                    }
                    Err((code, detail)) => self.fail(now, code, Some(detail)),
                }
            }
            (phase, Event::ReadFailed(os)) => {
                let code = match phase {
                    P::Cookie => ErrorCode::RECV_COOKIE,
                    P::Params => ErrorCode::RECV_PARAMS,
                    P::Results => ErrorCode::RECV_RESULTS,
                    _ => ErrorCode::CTRL_CLOSE,
                };
                if phase == P::Cookie && os.is_none() {
                    // Nothing at all was sent (a port scan): stock logs the
                    // cookie error; there is nobody to tell.
                    return self.finish(now, Some(code.log_text(None)));
                }
                self.fail(now, code, os)
            }
            (P::Done, Event::Eof) => self.finish(now, None),
            (_, Event::Eof) => self.finish(now, Some(errors::CLIENT_CLOSED.to_string())),
            (P::Running, Event::Tick(counters)) => {
                let mut out = self.data_tick(now, counters);
                if self.phase == P::Running {
                    out.extend(self.timeouts(now));
                }
                out
            }
            (_, Event::Tick(_)) => self.timeouts(now),
            (phase, Event::StateByte(byte)) => self.state_byte(now, phase, byte),
            // Events that do not fit the phase are the driver's bug, not the
            // client's; ignore them.
            _ => Vec::new(),
        }
    }

    /// Decodes the parameters and checks them against the policy.
    fn judge_params(&mut self, now: Instant, body: &[u8]) -> Vec<Action> {
        match TestParams::decode(body).and_then(|p| self.policy.check(&p).map(|()| p)) {
            Ok(params) => {
                self.params = Some(params);
                self.enter(Phase::Preparing, now);
                vec![Action::Prepare]
            }
            Err(e) => {
                let os = (e.code == ErrorCode::RECV_PARAMS).then(String::new);
                self.fail(now, e.code, os)
            }
        }
    }

    /// The first event: a client outside `--allow` is refused at once.
    fn connected(&mut self, now: Instant, ip: IpAddr) -> Vec<Action> {
        if self.policy.allow.allows(ip) {
            return Vec::new();
        }
        let why = format!(
            "client {} is not in the allowed networks",
            ip.to_canonical()
        );
        let mut out = vec![Action::Refused(why)];
        out.extend(self.fail(now, ErrorCode::AUTH_TEST, None));
        out
    }

    /// The data-phase rules at a tick: progress per direction, the interval
    /// sample and its bitrate cap, the omit end, and broken streams.
    fn data_tick(&mut self, now: Instant, c: Counters) -> Vec<Action> {
        let l = self.limits;
        let (received, sent) = self.last_counts;
        if c.received > received {
            self.timers.bump(Timer::RecvIdle, now + l.rcv_timeout);
        }
        // Sending is stuck only when nothing went out and every sending
        // stream sits in a write (the client stopped reading) or broke; a
        // stream waiting for its pacing is fine.
        if c.sent > sent || c.pacing {
            self.timers.bump(Timer::SendIdle, now + l.rcv_timeout);
        }
        self.last_counts = (c.received, c.sent);
        let interval_due = self.timers.expired(Timer::Interval, now);
        let omit_due = self
            .timers
            .get(Timer::OmitEnd)
            .is_some_and(|at| at <= now || (interval_due && at <= now + OMIT_SLACK));
        if !interval_due && !omit_due {
            return Vec::new();
        }
        let mut out = vec![Action::SampleInterval];
        let over_limit = self.over_rate_limit(now, c.received.saturating_add(c.sent));
        if omit_due {
            self.timers.stop(Timer::OmitEnd);
            out.push(Action::EndOmit);
        }
        if !interval_due {
            return out;
        }
        self.timers.advance(Timer::Interval, INTERVAL, now);
        if over_limit {
            out.extend(self.fail(now, ErrorCode::TOTAL_RATE, None));
            return out;
        }
        // A data stream that broke (reset, read or write error) ends the
        // test one tick later: a client that was killed closes its control
        // connection at the same moment, and that is what it should say.
        if let Some((sender, os)) = c.broken {
            if std::mem::replace(&mut self.broken_seen, true) {
                let code = if sender {
                    ErrorCode::STREAM_WRITE
                } else {
                    ErrorCode::STREAM_READ
                };
                out.extend(self.fail(now, code, Some(os.unwrap_or_default())));
            }
        }
        out
    }

    /// Adds the interval that ends at `now` (with `total` bytes moved so
    /// far) to the rate window: whether the average is over the cap.
    fn over_rate_limit(&mut self, now: Instant, total: u64) -> bool {
        let (at, before) = self.last_interval.unwrap_or((now, total));
        self.last_interval = Some((now, total));
        let Some(limit) = self.policy.bitrate_limit else {
            return false;
        };
        let secs = now.saturating_duration_since(at).as_secs_f64();
        self.rate_window
            .exceeded(total.saturating_sub(before), secs, limit)
    }

    /// The timers of the current phase that passed by `now`, as faults.
    fn timeouts(&mut self, now: Instant) -> Vec<Action> {
        use Phase as P;
        let due = |t| self.timers.expired(t, now);
        let code = match self.phase {
            P::Cookie | P::Params | P::Results
                if due(Timer::ReadStart) || due(Timer::ReadTotal) =>
            {
                match self.phase {
                    P::Cookie => ErrorCode::RECV_COOKIE,
                    P::Params => ErrorCode::RECV_PARAMS,
                    _ => ErrorCode::RECV_RESULTS,
                }
            }
            P::Streams if due(Timer::Streams) => ErrorCode::STREAM_ACCEPT,
            P::Running if due(Timer::RecvIdle) => ErrorCode::NO_MSG,
            P::Running if due(Timer::SendIdle) => {
                // Stock has no such rule; the client hears the idle code,
                // the log says which direction stalled.
                let text = "error - idle timeout for sending data".to_string();
                return self.fail_with(now, ErrorCode::NO_MSG, text);
            }
            P::Running if due(Timer::Grace) => ErrorCode::DURATION_EXPIRED,
            // The client has its results; it just never said goodbye.
            P::Done if due(Timer::ReadTotal) => return self.finish(now, None),
            _ => return Vec::new(),
        };
        self.fail(now, code, Some(String::new()))
    }

    fn state_byte(&mut self, now: Instant, phase: Phase, byte: u8) -> Vec<Action> {
        match (phase, State::try_from(byte)) {
            (_, Ok(State::ClientTerminate)) => {
                self.finish(now, Some(errors::CLIENT_TERMINATED.to_string()))
            }
            (_, Ok(State::TestStart)) => Vec::new(),
            (Phase::Running, Ok(State::TestEnd)) => {
                self.ended = true;
                self.enter(Phase::Results, now);
                vec![
                    Action::EndTest,
                    Action::StopStreams,
                    Action::Send(State::ExchangeResults),
                ]
            }
            (Phase::Done, Ok(State::IperfDone)) => self.finish(now, None),
            // A 3.9+ client that failed on its side sends IPERF_DONE early.
            (_, Ok(State::IperfDone)) => {
                self.finish(now, Some("the client ended the test early".to_string()))
            }
            _ => self.fail(now, ErrorCode::MESSAGE, None),
        }
    }
}
