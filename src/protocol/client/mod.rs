//! The client side of the iperf3 control channel, for the box's probes:
//! events in (with the time they happened), actions out, and the next
//! deadline, like the server's [`crate::protocol::session`]. Every wait on
//! the server has a timer from [`Limits`]; the data phase adds the
//! interval, omit, end-of-test, count and idle timers. The client decides
//! when the test ends (`-t`, `-n`, `-k`, or the longest run allowed), as
//! stock clients do; the driver only moves bytes and reports them.
//!
//! Files: `events.rs` (events, actions, phases, failures), `timers.rs`
//! (the timer table and limits), this file (the machine), `tests/`
//! (simulated-clock tests, and the client against the server's session).

mod events;
mod timers;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use events::{Action, Event, Expect, Failure, Phase, Progress};
pub use timers::{Limits, Timer, TimerTable, COUNT_CHECK};

use super::errors::ErrorCode;
use super::params::TestParams;
use super::results_exchange::check_results;
use super::session::{INTERVAL, OMIT_SLACK};
use super::wire::State;

/// The control-channel state machine of one test the box runs as a client.
#[derive(Debug)]
pub struct Client {
    /// Where the test stands.
    phase: Phase,
    /// Timing limits.
    limits: Limits,
    /// One deadline per kind of wait.
    timers: TimerTable,
    /// What the test asks of the server.
    params: TestParams,
    /// Data streams connected so far.
    streams: u32,
    /// A `SERVER_ERROR` byte arrived; its payload is read next.
    error_pending: bool,
    /// The counters when the omit period ended (zero without one).
    base: Progress,
    /// Received bytes at the last tick (progress is new bytes).
    last_received: u64,
}

impl Client {
    /// A client for a test with `params`, its control connection being
    /// opened at `now`.
    pub fn new(now: Instant, params: TestParams, limits: Limits) -> Client {
        let mut c = Client {
            phase: Phase::Connecting,
            limits,
            timers: TimerTable::default(),
            params,
            streams: 0,
            error_pending: false,
            base: Progress::default(),
            last_received: 0,
        };
        c.timers.set(Timer::Reply, now + limits.reply);
        c
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The test's parameters.
    pub fn params(&self) -> &TestParams {
        &self.params
    }

    /// The timer table (what is armed, and for when).
    pub fn timers(&self) -> &TimerTable {
        &self.timers
    }

    /// When the driver must report [`Event::Tick`] if nothing else happens.
    pub fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// What to read next.
    pub fn expect(&self) -> Expect {
        match self.phase {
            Phase::Connecting | Phase::Streams | Phase::Finished => Expect::Nothing,
            _ if self.error_pending => Expect::ErrorPayload,
            Phase::Results => Expect::Results,
            _ => Expect::StateByte,
        }
    }

    /// Feeds one event that happened at `now`; returns what to do.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        use Phase as P;
        if self.phase == P::Finished {
            return Vec::new();
        }
        match (self.phase, event) {
            (_, Event::Cancel(why)) => {
                let mut out = Vec::new();
                if self.phase != P::Connecting {
                    out.push(Action::Send(State::ClientTerminate));
                }
                out.extend(self.finish(now, Some(Failure::Cancelled(why))));
                out
            }
            (_, Event::Fault(text)) => self.give_up(now, Failure::Local(text)),
            (P::Connecting, Event::Connected) => {
                self.enter(P::Cookie, now);
                vec![Action::SendCookie]
            }
            (_, Event::ErrorPayload(bytes)) if self.error_pending => {
                let [a, b, c, d, e, f, g, h] = bytes;
                let code = ErrorCode(i32::from_be_bytes([a, b, c, d]));
                let errno = i32::from_be_bytes([e, f, g, h]);
                self.finish(now, Some(Failure::Server { code, errno }))
            }
            (_, Event::StateByte(byte)) if !self.error_pending => self.state_byte(now, byte),
            (P::Streams, Event::StreamConnected) => {
                self.streams += 1;
                if self.streams >= self.params.stream_count() {
                    self.enter(P::Starting, now);
                }
                Vec::new()
            }
            (P::Running, Event::Started) => {
                self.started(now);
                Vec::new()
            }
            (P::Running, Event::Tick(progress)) => {
                let mut out = self.data_tick(now, progress);
                if self.phase == P::Running {
                    out.extend(self.timeouts(now));
                }
                out
            }
            (_, Event::Tick(_)) => self.timeouts(now),
            (P::Results, Event::ReadStarted) => {
                self.timers.stop(Timer::ReadStart);
                Vec::new()
            }
            (P::Results, Event::ServerResults(body)) => {
                match check_results(&body, self.params.stream_count() as usize) {
                    Ok(results) => {
                        self.enter(P::Display, now);
                        vec![Action::KeepServerResults(results)]
                    }
                    Err((_, detail)) => self.give_up(
                        now,
                        Failure::Protocol(format!("unable to receive results: {detail}")),
                    ),
                }
            }
            (P::Results, Event::ReadFailed(text)) => self.give_up(
                now,
                Failure::Protocol(format!("unable to receive results: {text}")),
            ),
            (_, Event::Eof | Event::ReadFailed(_)) => self.finish(now, Some(Failure::Closed)),
            // Events that do not fit the phase are the driver's bug, not the
            // server's; ignore them.
            _ => Vec::new(),
        }
    }

    /// Moves to `phase` at `now` and arms its timers.
    fn enter(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        let l = self.limits;
        [Timer::Reply, Timer::ReadStart, Timer::Streams]
            .into_iter()
            .for_each(|t| self.timers.stop(t));
        match phase {
            Phase::Cookie | Phase::Params | Phase::Starting | Phase::Ending | Phase::Display => {
                self.timers.set(Timer::Reply, now + l.reply);
            }
            Phase::Results => {
                self.timers.set(Timer::ReadStart, now + l.read_start);
                self.timers.set(Timer::Reply, now + l.reply);
            }
            Phase::Streams => self.timers.set(Timer::Streams, now + l.streams),
            Phase::Running | Phase::Connecting => {}
            Phase::Finished => self.timers.stop_all(),
        }
        if phase != Phase::Running {
            [
                Timer::End,
                Timer::Count,
                Timer::RecvIdle,
                Timer::Interval,
                Timer::OmitEnd,
            ]
            .into_iter()
            .for_each(|t| self.timers.stop(t));
        }
    }

    /// The data streams started at `now`: the data phase's timers.
    fn started(&mut self, now: Instant) {
        let p = &self.params;
        let omit = Duration::from_secs(u64::from(p.omit));
        let timed = Duration::from_secs(u64::from(p.time)) + omit;
        let end = if p.time > 0 {
            timed.min(self.limits.max_run)
        } else {
            self.limits.max_run
        };
        self.timers.set(Timer::End, now + end);
        self.timers.set(Timer::Interval, now + INTERVAL);
        if p.omit > 0 {
            self.timers.set(Timer::OmitEnd, now + omit);
        }
        if p.time == 0 && (p.num > 0 || p.blockcount > 0) {
            self.timers.set(Timer::Count, now + COUNT_CHECK);
        }
        if p.reverse || p.bidirectional {
            self.timers
                .set(Timer::RecvIdle, now + self.limits.rcv_timeout);
        }
        self.base = Progress::default();
        self.last_received = 0;
    }

    /// The data-phase rules at a tick: progress, the interval sample, the
    /// omit end, and whether the test is over.
    fn data_tick(&mut self, now: Instant, progress: Progress) -> Vec<Action> {
        if progress.received > self.last_received {
            self.last_received = progress.received;
            self.timers
                .bump(Timer::RecvIdle, now + self.limits.rcv_timeout);
        }
        let mut out = Vec::new();
        let interval_due = self.timers.expired(Timer::Interval, now);
        let omit_due = self
            .timers
            .get(Timer::OmitEnd)
            .is_some_and(|at| at <= now || (interval_due && at <= now + OMIT_SLACK));
        if interval_due || omit_due {
            out.push(Action::SampleInterval);
        }
        if interval_due {
            self.timers.advance(Timer::Interval, INTERVAL, now);
        }
        if omit_due {
            self.timers.stop(Timer::OmitEnd);
            self.base = progress;
            out.push(Action::EndOmit);
        }
        if self.timers.is_armed(Timer::OmitEnd) {
            return out;
        }
        if self.timers.expired(Timer::Count, now) {
            self.timers.advance(Timer::Count, COUNT_CHECK, now);
        }
        if self.timers.expired(Timer::End, now) || self.count_reached(progress) {
            self.enter(Phase::Ending, now);
            out.extend([Action::EndTest, Action::Send(State::TestEnd)]);
        }
        out
    }

    /// Whether a `-n`/`-k` test reached its count, in either direction, as
    /// stock 3.10+ clients judge it: after the omit period.
    fn count_reached(&self, progress: Progress) -> bool {
        let moved = progress.since(self.base);
        let (num, blocks) = (self.params.num, self.params.blockcount);
        (num > 0 && (moved.sent >= num || moved.received >= num))
            || (blocks > 0 && (moved.sent_blocks >= blocks || moved.received_blocks >= blocks))
    }

    /// The timers of the current phase that passed by `now`, as failures.
    fn timeouts(&mut self, now: Instant) -> Vec<Action> {
        use Phase as P;
        let due = |t| self.timers.expired(t, now);
        let what = match self.phase {
            P::Connecting if due(Timer::Reply) => "connecting",
            P::Cookie if due(Timer::Reply) => "waiting for PARAM_EXCHANGE",
            P::Params if due(Timer::Reply) => "waiting for CREATE_STREAMS",
            P::Streams if due(Timer::Streams) => "connecting the data streams",
            P::Starting if due(Timer::Reply) => "waiting for TEST_START",
            P::Running if due(Timer::RecvIdle) => "no data received",
            P::Ending if due(Timer::Reply) => "waiting for EXCHANGE_RESULTS",
            P::Results if due(Timer::ReadStart) || due(Timer::Reply) => "waiting for results",
            P::Display if due(Timer::Reply) => "waiting for DISPLAY_RESULTS",
            _ => return Vec::new(),
        };
        self.give_up(now, Failure::Timeout(what))
    }

    /// A state byte from the server.
    fn state_byte(&mut self, now: Instant, byte: u8) -> Vec<Action> {
        use Phase as P;
        match (self.phase, State::try_from(byte)) {
            (_, Ok(State::ServerError)) => {
                self.error_pending = true;
                Vec::new()
            }
            (_, Ok(State::AccessDenied)) => self.finish(now, Some(Failure::Busy)),
            (_, Ok(State::ServerTerminate)) => self.finish(now, Some(Failure::ServerTerminated)),
            (P::Cookie, Ok(State::ParamExchange)) => {
                self.enter(P::Params, now);
                vec![Action::SendParams(self.params.encode())]
            }
            (P::Params, Ok(State::CreateStreams)) => {
                self.enter(P::Streams, now);
                vec![Action::ConnectStreams(self.params.stream_count())]
            }
            (P::Starting, Ok(State::TestStart)) => Vec::new(),
            (P::Starting, Ok(State::TestRunning)) => {
                self.enter(P::Running, now);
                vec![Action::StartTest]
            }
            (P::Ending, Ok(State::ExchangeResults)) => {
                self.enter(P::Results, now);
                vec![Action::SendResults]
            }
            (P::Display, Ok(State::DisplayResults)) => {
                let mut out = vec![Action::Send(State::IperfDone)];
                out.extend(self.finish(now, None));
                out
            }
            _ => self.give_up(
                now,
                Failure::Protocol(format!("unexpected control message {}", byte as i8)),
            ),
        }
    }

    /// Ends the test on our side's failure: a 3.9+ client tells the server
    /// with `IPERF_DONE` out of turn, once the server knows of the test.
    fn give_up(&mut self, now: Instant, failure: Failure) -> Vec<Action> {
        let mut out = Vec::new();
        if !matches!(self.phase, Phase::Connecting | Phase::Cookie) {
            out.push(Action::Send(State::IperfDone));
        }
        out.extend(self.finish(now, Some(failure)));
        out
    }

    /// Ends the test with `failure` (none for a clean end).
    fn finish(&mut self, now: Instant, failure: Option<Failure>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Running {
            out.push(Action::EndTest);
        }
        if self.streams > 0 {
            out.push(Action::CloseStreams);
        }
        out.push(Action::Finish(failure));
        self.enter(Phase::Finished, now);
        out
    }
}
