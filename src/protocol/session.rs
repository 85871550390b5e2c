//! The control-channel state machine: events in (with the time they
//! happened), actions out, and the next deadline. Every phase that waits on
//! the client has a deadline from [`Limits`], so no client can hold a port
//! forever; the driver only reports [`Event::Timeout`] when it passes.

use std::time::Duration;

/// Timing limits of a test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest wait for the first byte of the cookie, parameters or results
    /// (stock 3.15+: 10 s).
    pub read_start: Duration,
    /// Longest wait for a whole cookie, parameters or results message, and
    /// for `IPERF_DONE` after the results (stock 3.15+: 30 s).
    pub read_total: Duration,
    /// Longest wait for all data streams to connect.
    pub streams: Duration,
    /// No data received for this long while receiving → error 144; no data
    /// sent for this long while every sending stream is blocked (the client
    /// stopped reading) → error 144 too.
    pub rcv_timeout: Duration,
    /// Extra time past `time + omit` before a timed test is cut (error 160).
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_start: Duration::from_secs(10),
            read_total: Duration::from_secs(30),
            streams: Duration::from_secs(30),
            rcv_timeout: Duration::from_secs(120),
            grace: Duration::from_secs(40),
        }
    }
}

use std::time::Instant;

use super::errors::{self, ErrorCode};
use super::params::TestParams;
use super::policy::Policy;
use super::results::{check_client_results, ClientResults};
use super::wire::{Cookie, State};

/// Where a test's control connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the 37-byte cookie.
    Cookie,
    /// `PARAM_EXCHANGE` sent; waiting for the parameters.
    Params,
    /// Parameters accepted; the driver prepares the data listener.
    Preparing,
    /// `CREATE_STREAMS` sent; waiting for the data streams.
    Streams,
    /// `TEST_START`/`TEST_RUNNING` sent; data flows until `TEST_END`.
    Running,
    /// `EXCHANGE_RESULTS` sent; waiting for the client's results.
    Results,
    /// `DISPLAY_RESULTS` sent; waiting for `IPERF_DONE` or EOF.
    Done,
    /// Over; the log entry has been asked for.
    Finished,
}

/// What the driver tells the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The cookie arrived.
    Cookie(Cookie),
    /// A parameters document arrived (its body).
    Params(Vec<u8>),
    /// The first bytes of the awaited cookie, parameters or results arrived
    /// (the rest may follow; the message now has the whole `read_total`).
    ReadStarted,
    /// Reading the cookie, parameters or results failed: EOF before the
    /// whole message, an oversized or empty length prefix, an OS error.
    ReadFailed(Option<String>),
    /// The data listener is ready for this test's streams.
    Prepared,
    /// One more data stream with our cookie was accepted.
    StreamConnected,
    /// A state byte arrived.
    StateByte(u8),
    /// The control connection reached EOF (or a write to it failed).
    Eof,
    /// The client's results document arrived (its body).
    ClientResults(Vec<u8>),
    /// The receiving streams made progress (new bytes).
    DataProgress,
    /// The sending streams made progress, or are waiting only for their
    /// pacing (not blocked by a client that stopped reading).
    SendProgress,
    /// The deadline from [`Session::deadline`] passed (reported early, it
    /// is ignored).
    Timeout,
    /// A failure on the server's side, to be reported with this code.
    Fault(ErrorCode, Option<String>),
    /// The server is shutting down; the text is the log's `error`.
    Shutdown(&'static str),
}

/// What the session asks the driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send one state byte.
    Send(State),
    /// Send `SERVER_ERROR` with this code and errno.
    SendError(ErrorCode, i32),
    /// Prepare the data listener for these parameters (window, MSS, UDP
    /// socket), then report [`Event::Prepared`] or [`Event::Fault`].
    Prepare,
    /// Start the data streams, the interval timer and the CPU clock.
    StartTest,
    /// Take the final sample and build `end`.
    EndTest,
    /// Stop the data streams.
    StopStreams,
    /// The client's results passed the checks; keep them for the log.
    KeepClientResults(ClientResults),
    /// Send the server's results document.
    SendResults,
    /// The test is over: close everything and write the log entry with this
    /// `error` (none for a clean end).
    Finish(Option<String>),
}

/// What the driver should read from the control connection next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 37 bytes of cookie.
    Cookie,
    /// A length-prefixed parameters document.
    Params,
    /// Single state bytes.
    StateByte,
    /// A length-prefixed results document.
    Results,
    /// Nothing (preparing, or finished).
    Nothing,
}

/// The control-channel state machine of one test.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    limits: Limits,
    phase_since: Instant,
    params: Option<TestParams>,
    cookie: Option<Cookie>,
    streams: u32,
    started: Option<Instant>,
    last_progress: Instant,
    last_send_progress: Instant,
    read_started: bool,
    ended: bool,
    policy: Policy,
}

impl Session {
    /// A session whose control connection was accepted at `now`.
    pub fn new(now: Instant, limits: Limits) -> Session {
        Session {
            phase: Phase::Cookie,
            limits,
            phase_since: now,
            params: None,
            cookie: None,
            streams: 0,
            started: None,
            last_progress: now,
            last_send_progress: now,
            read_started: false,
            ended: false,
            policy: Policy::default(),
        }
    }

    /// Applies the server's policy to the parameters of this test.
    pub fn with_policy(mut self, policy: Policy) -> Session {
        self.policy = policy;
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

    /// Whether the session waits for the first byte of a cookie, parameters
    /// or results (the driver then reports [`Event::ReadStarted`] when bytes
    /// of it arrive).
    pub fn awaiting_first_byte(&self) -> bool {
        matches!(self.phase, Phase::Cookie | Phase::Params | Phase::Results) && !self.read_started
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

    /// When the driver must report [`Event::Timeout`] if nothing else happens.
    pub fn deadline(&self) -> Option<Instant> {
        let l = &self.limits;
        match self.phase {
            Phase::Cookie | Phase::Params | Phase::Results => {
                let total = self.phase_since + l.read_total;
                if self.read_started {
                    Some(total)
                } else {
                    Some(total.min(self.phase_since + l.read_start))
                }
            }
            Phase::Done => Some(self.phase_since + l.read_total),
            Phase::Preparing => None,
            Phase::Streams => Some(self.phase_since + l.streams),
            Phase::Running => {
                let params = self.params.as_ref()?;
                let mut deadline = None;
                if let (Some(start), true) = (self.started, params.time > 0) {
                    let run = Duration::from_secs(u64::from(params.time) + u64::from(params.omit));
                    deadline = Some(start + run + l.grace);
                }
                let mut idle = Vec::new();
                if params.server_receives() {
                    idle.push(self.last_progress + l.rcv_timeout);
                }
                if params.server_sends() {
                    idle.push(self.last_send_progress + l.rcv_timeout);
                }
                for at in idle {
                    deadline = Some(deadline.map_or(at, |d: Instant| d.min(at)));
                }
                deadline
            }
            Phase::Finished => None,
        }
    }

    fn enter(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.phase_since = now;
        self.read_started = false;
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
            (P::Cookie, Event::Cookie(cookie)) => {
                self.cookie = Some(cookie);
                self.enter(P::Params, now);
                vec![Action::Send(State::ParamExchange)]
            }
            (P::Params, Event::Params(body)) => {
                match TestParams::decode(&body).and_then(|p| self.policy.check(&p).map(|()| p)) {
                    Ok(params) => {
                        self.params = Some(params);
                        self.enter(P::Preparing, now);
                        vec![Action::Prepare]
                    }
                    Err(e) => {
                        let os = (e.code == ErrorCode::RECV_PARAMS).then(String::new);
                        self.fail(now, e.code, os)
                    }
                }
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
                self.started = Some(now);
                self.last_progress = now;
                self.last_send_progress = now;
                vec![
                    Action::Send(State::TestStart),
                    Action::Send(State::TestRunning),
                    Action::StartTest,
                ]
            }
            (P::Cookie | P::Params | P::Results, Event::ReadStarted) => {
                self.read_started = true;
                Vec::new()
            }
            (P::Running, Event::DataProgress) => {
                self.last_progress = now;
                Vec::new()
            }
            (P::Running, Event::SendProgress) => {
                self.last_send_progress = now;
                Vec::new()
            }
            (P::Results, Event::ClientResults(body)) => {
                let count = self.params.as_ref().map_or(1, TestParams::stream_count);
                match check_client_results(&body, count as usize) {
                    Ok(results) => {
                        self.enter(P::Done, now);
                        vec![
                            Action::KeepClientResults(results),
                            Action::SendResults,
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
            // Early (progress came in between): not a timeout after all.
            (_, Event::Timeout) if self.deadline().is_some_and(|d| now < d) => Vec::new(),
            (phase, Event::Timeout) => {
                let code = match phase {
                    P::Cookie => ErrorCode::RECV_COOKIE,
                    P::Params => ErrorCode::RECV_PARAMS,
                    P::Streams => ErrorCode::STREAM_ACCEPT,
                    P::Results => ErrorCode::RECV_RESULTS,
                    P::Running => {
                        let limit = self.limits.rcv_timeout;
                        let (receives, sends) = self
                            .params
                            .as_ref()
                            .map_or((false, false), |p| (p.server_receives(), p.server_sends()));
                        if receives && now >= self.last_progress + limit {
                            ErrorCode::NO_MSG
                        } else if sends && now >= self.last_send_progress + limit {
                            // Stock has no such rule; the client hears the
                            // idle code, the log says which direction stalled.
                            let text = "error - idle timeout for sending data".to_string();
                            return self.fail_with(now, ErrorCode::NO_MSG, text);
                        } else {
                            ErrorCode::DURATION_EXPIRED
                        }
                    }
                    // The client has its results; it just never said goodbye.
                    P::Done => return self.finish(now, None),
                    P::Preparing | P::Finished => return Vec::new(),
                };
                self.fail(now, code, Some(String::new()))
            }
            (phase, Event::StateByte(byte)) => self.state_byte(now, phase, byte),
            // Events that do not fit the phase are the driver's bug, not the
            // client's; ignore them.
            _ => Vec::new(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::COOKIE_LEN;

    const PARAMS: &[u8] = br#"{"tcp":true,"omit":0,"time":2,"parallel":2,"len":131072}"#;
    const RESULTS: &str = r#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":1,"streams":[{"id":1,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0},{"id":3,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0}]}"#;

    fn cookie() -> Cookie {
        Cookie([b'a'; COOKIE_LEN])
    }

    struct Clock(Instant);
    impl Clock {
        fn at(&self, secs: f64) -> Instant {
            self.0 + Duration::from_secs_f64(secs)
        }
    }

    fn running(clock: &Clock) -> Session {
        let mut s = Session::new(clock.at(0.0), Limits::default());
        assert_eq!(
            s.handle(clock.at(0.0), Event::Cookie(cookie())),
            vec![Action::Send(State::ParamExchange)]
        );
        assert_eq!(s.expect(), Expect::Params);
        assert_eq!(
            s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec())),
            vec![Action::Prepare]
        );
        assert_eq!(s.expect(), Expect::Nothing);
        assert_eq!(
            s.handle(clock.at(0.0), Event::Prepared),
            vec![Action::Send(State::CreateStreams)]
        );
        assert_eq!(s.handle(clock.at(0.1), Event::StreamConnected), vec![]);
        assert_eq!(
            s.handle(clock.at(0.1), Event::StreamConnected),
            vec![
                Action::Send(State::TestStart),
                Action::Send(State::TestRunning),
                Action::StartTest
            ]
        );
        assert_eq!(s.phase(), Phase::Running);
        s
    }

    #[test]
    fn normal_test() {
        let clock = Clock(Instant::now());
        let mut s = running(&clock);
        assert_eq!(
            s.handle(clock.at(2.1), Event::StateByte(4)),
            vec![
                Action::EndTest,
                Action::StopStreams,
                Action::Send(State::ExchangeResults)
            ]
        );
        assert_eq!(s.expect(), Expect::Results);
        let actions = s.handle(
            clock.at(2.1),
            Event::ClientResults(RESULTS.as_bytes().to_vec()),
        );
        assert!(matches!(actions[0], Action::KeepClientResults(_)));
        assert_eq!(
            actions[1..],
            [Action::SendResults, Action::Send(State::DisplayResults)]
        );
        assert_eq!(
            s.handle(clock.at(2.2), Event::StateByte(16)),
            vec![Action::Finish(None)]
        );
        assert_eq!(s.phase(), Phase::Finished);
        assert_eq!(s.handle(clock.at(2.2), Event::Eof), vec![]);
    }

    #[test]
    fn eof_after_display_is_clean() {
        let clock = Clock(Instant::now());
        let mut s = running(&clock);
        s.handle(clock.at(2.0), Event::StateByte(4));
        s.handle(
            clock.at(2.0),
            Event::ClientResults(RESULTS.as_bytes().to_vec()),
        );
        assert_eq!(
            s.handle(clock.at(2.0), Event::Eof),
            vec![Action::Finish(None)]
        );
    }

    #[test]
    fn client_vanishes_mid_test() {
        let clock = Clock(Instant::now());
        let mut s = running(&clock);
        assert_eq!(
            s.handle(clock.at(1.0), Event::Eof),
            vec![
                Action::EndTest,
                Action::Finish(Some(errors::CLIENT_CLOSED.into()))
            ]
        );
    }

    #[test]
    fn client_terminates_while_streams_connect() {
        let clock = Clock(Instant::now());
        let mut s = Session::new(clock.at(0.0), Limits::default());
        s.handle(clock.at(0.0), Event::Cookie(cookie()));
        s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec()));
        s.handle(clock.at(0.0), Event::Prepared);
        assert_eq!(
            s.handle(clock.at(0.5), Event::StateByte(12)),
            vec![Action::Finish(Some(errors::CLIENT_TERMINATED.into()))]
        );
    }

    #[test]
    fn policy_refuses_long_tests() {
        let clock = Clock(Instant::now());
        let policy = Policy {
            max_duration: Some(1),
            ..Policy::default()
        };
        let mut s = Session::new(clock.at(0.0), Limits::default()).with_policy(policy);
        s.handle(clock.at(0.0), Event::Cookie(cookie()));
        let out = s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec()));
        assert_eq!(out[0], Action::SendError(ErrorCode::MAX_DURATION, 0));
    }

    #[test]
    fn bad_params_are_reported() {
        let clock = Clock(Instant::now());
        let mut s = Session::new(clock.at(0.0), Limits::default());
        s.handle(clock.at(0.0), Event::Cookie(cookie()));
        let out = s.handle(clock.at(0.0), Event::Params(b"{\"parallel\":500}".to_vec()));
        assert_eq!(out[0], Action::SendError(ErrorCode::NUM_STREAMS, 0));
        assert!(
            matches!(&out[1], Action::Finish(Some(t)) if t.starts_with("error - number of parallel"))
        );
    }

    #[test]
    fn unknown_state_byte_is_error_110() {
        let clock = Clock(Instant::now());
        let mut s = running(&clock);
        let out = s.handle(clock.at(1.0), Event::StateByte(7));
        assert_eq!(out[0], Action::SendError(ErrorCode::MESSAGE, 0));
        assert_eq!(out[1], Action::EndTest);
    }

    #[test]
    fn timeouts_per_phase() {
        let clock = Clock(Instant::now());
        let mut s = Session::new(clock.at(0.0), Limits::default());
        assert_eq!(s.deadline(), Some(clock.at(10.0)));
        let out = s.handle(clock.at(10.0), Event::Timeout);
        assert_eq!(out[0], Action::SendError(ErrorCode::RECV_COOKIE, 0));

        // Running, receiving: idle timeout 120 s unless progress; hard limit
        // time + omit + 40 s.
        let mut s = running(&clock);
        assert_eq!(s.deadline(), Some(clock.at(0.1 + 42.0)));
        let limits = Limits {
            rcv_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        s.limits = limits;
        assert_eq!(s.deadline(), Some(clock.at(5.1)));
        s.handle(clock.at(3.0), Event::DataProgress);
        assert_eq!(s.deadline(), Some(clock.at(8.0)));
        let out = s.handle(clock.at(8.0), Event::Timeout);
        assert_eq!(out[0], Action::SendError(ErrorCode::NO_MSG, 0));
        assert!(
            matches!(&out[2], Action::Finish(Some(t)) if t == "error - idle timeout for receiving data")
        );
    }

    #[test]
    fn read_start_then_read_total() {
        let clock = Clock(Instant::now());
        // Nothing at all: the start limit (10 s) applies.
        let mut s = Session::new(clock.at(0.0), Limits::default());
        assert!(s.awaiting_first_byte());
        assert_eq!(s.deadline(), Some(clock.at(10.0)));
        // Some bytes came: the whole message has the total (30 s) from the
        // start of the phase.
        assert_eq!(s.handle(clock.at(4.0), Event::ReadStarted), vec![]);
        assert!(!s.awaiting_first_byte());
        assert_eq!(s.deadline(), Some(clock.at(30.0)));
        // The next message starts a new phase with its own limits.
        s.handle(clock.at(5.0), Event::Cookie(cookie()));
        assert!(s.awaiting_first_byte());
        assert_eq!(s.deadline(), Some(clock.at(15.0)));
        let out = s.handle(clock.at(15.0), Event::Timeout);
        assert_eq!(out[0], Action::SendError(ErrorCode::RECV_PARAMS, 0));
        assert!(
            matches!(&out[1], Action::Finish(Some(t)) if t.starts_with("error - unable to receive parameters"))
        );
        assert_eq!(s.phase(), Phase::Finished);
        assert_eq!(s.deadline(), None);

        // Results that never come: 117 after the start limit.
        let mut s = running(&clock);
        s.handle(clock.at(2.0), Event::StateByte(4));
        assert_eq!(s.deadline(), Some(clock.at(12.0)));
        let out = s.handle(clock.at(12.0), Event::Timeout);
        assert_eq!(out[0], Action::SendError(ErrorCode::RECV_RESULTS, 0));

        // A short limit from the command line.
        let limits = Limits {
            read_start: Duration::from_millis(500),
            read_total: Duration::from_millis(1500),
            ..Limits::default()
        };
        let mut s = Session::new(clock.at(0.0), limits);
        assert_eq!(s.deadline(), Some(clock.at(0.5)));
        s.handle(clock.at(0.1), Event::ReadStarted);
        assert_eq!(s.deadline(), Some(clock.at(1.5)));
    }

    #[test]
    fn streams_that_never_connect_time_out() {
        let clock = Clock(Instant::now());
        let mut s = Session::new(clock.at(0.0), Limits::default());
        s.handle(clock.at(0.0), Event::Cookie(cookie()));
        s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec()));
        s.handle(clock.at(1.0), Event::Prepared);
        assert_eq!(s.deadline(), Some(clock.at(31.0)));
        s.handle(clock.at(2.0), Event::StreamConnected);
        let out = s.handle(clock.at(31.0), Event::Timeout);
        assert_eq!(out[0], Action::SendError(ErrorCode::STREAM_ACCEPT, 0));
        assert!(matches!(out[1], Action::Finish(Some(_))));
    }

    #[test]
    fn a_client_that_stops_reading_is_dropped() {
        let clock = Clock(Instant::now());
        let limits = Limits {
            rcv_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let mut s = Session::new(clock.at(0.0), limits);
        s.handle(clock.at(0.0), Event::Cookie(cookie()));
        let reverse = br#"{"tcp":true,"time":0,"num":1000000000,"reverse":true}"#;
        s.handle(clock.at(0.0), Event::Params(reverse.to_vec()));
        s.handle(clock.at(0.0), Event::Prepared);
        s.handle(clock.at(0.0), Event::StreamConnected);
        // An untimed reverse test: only the send-idle rule bounds it.
        assert_eq!(s.deadline(), Some(clock.at(5.0)));
        // Receiving nothing is normal when only sending.
        s.handle(clock.at(4.0), Event::SendProgress);
        assert_eq!(s.deadline(), Some(clock.at(9.0)));
        // A timeout reported before the deadline changes nothing.
        assert_eq!(s.handle(clock.at(8.0), Event::Timeout), vec![]);
        let out = s.handle(clock.at(9.0), Event::Timeout);
        assert_eq!(out[0], Action::SendError(ErrorCode::NO_MSG, 0));
        assert_eq!(out[1], Action::EndTest);
        assert_eq!(
            out[2],
            Action::Finish(Some("error - idle timeout for sending data".into()))
        );
    }

    #[test]
    fn bad_parameter_documents_get_their_codes() {
        let clock = Clock(Instant::now());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_in_object = format!(
            r#"{{"title":{}1{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let cases: Vec<(&[u8], i32)> = vec![
            (b"", 114),
            (b"\xff\xfe", 114),
            (b"null", 114),
            (b"[]", 114),
            (b"\"tcp\"", 114),
            (b"{\"time\":", 114),
            (b"{} trailing", 114),
            (deep.as_bytes(), 114),
            (deep_in_object.as_bytes(), 114),
            (br#"{"time":"10"}"#, 114),
            (br#"{"parallel":[1]}"#, 114),
            (br#"{"udp":"yes"}"#, 114),
            (br#"{"title":42}"#, 114),
            (br#"{"num":-5}"#, 114),
            (br#"{"bandwidth":1e400}"#, 114),
            (br#"{"time":-10}"#, 5),
            (br#"{"time":1e30}"#, 5),
            (br#"{"time":18446744073709551616}"#, 5),
            (br#"{"omit":-1}"#, 12),
            (br#"{"parallel":129}"#, 6),
            (br#"{"parallel":-1}"#, 6),
            (br#"{"len":-1}"#, 7),
            (br#"{"window":-1}"#, 8),
            (br#"{"TOS":-1}"#, 21),
        ];
        for (body, want) in cases {
            let mut s = Session::new(clock.at(0.0), Limits::default());
            s.handle(clock.at(0.0), Event::Cookie(cookie()));
            let out = s.handle(clock.at(0.0), Event::Params(body.to_vec()));
            assert_eq!(
                out[0],
                Action::SendError(ErrorCode(want), 0),
                "{}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
            assert!(matches!(out[1], Action::Finish(Some(_))));
            assert_eq!(s.phase(), Phase::Finished);
        }
        // Missing keys are defaults, not errors.
        let mut s = Session::new(clock.at(0.0), Limits::default());
        s.handle(clock.at(0.0), Event::Cookie(cookie()));
        assert_eq!(
            s.handle(clock.at(0.0), Event::Params(b"{}".to_vec())),
            vec![Action::Prepare]
        );
    }

    #[test]
    fn bad_results_documents_get_their_codes() {
        let clock = Clock(Instant::now());
        let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        let cases: Vec<(Vec<u8>, i32)> = vec![
            (b"garbage".to_vec(), 117),
            (b"[]".to_vec(), 117),
            (deep.into_bytes(), 117),
            (
                RESULTS.replace("\"streams\"", "\"streamz\"").into_bytes(),
                117,
            ),
            (
                RESULTS
                    .replace("\"bytes\":5", "\"bytes\":\"5\"")
                    .into_bytes(),
                117,
            ),
            (RESULTS.replace("\"id\":3", "\"id\":9").into_bytes(), 208),
            (RESULTS.replace("\"id\":3", "\"id\":-3").into_bytes(), 208),
        ];
        for (body, want) in cases {
            let mut s = running(&clock);
            s.handle(clock.at(2.0), Event::StateByte(4));
            let out = s.handle(clock.at(2.0), Event::ClientResults(body));
            assert_eq!(out[0], Action::SendError(ErrorCode(want), 0));
            assert!(matches!(out[1], Action::Finish(Some(_))));
        }
    }

    #[test]
    fn shutdown_while_running() {
        let clock = Clock(Instant::now());
        let mut s = running(&clock);
        let out = s.handle(
            clock.at(1.0),
            Event::Shutdown(errors::SERVER_TERMINATED_TERM),
        );
        assert_eq!(out[0], Action::EndTest);
        assert_eq!(out[1], Action::Send(State::ServerTerminate));
        assert!(matches!(out[2], Action::Finish(Some(_))));
    }

    #[test]
    fn bad_results_are_reported() {
        let clock = Clock(Instant::now());
        let mut s = running(&clock);
        s.handle(clock.at(2.0), Event::StateByte(4));
        let out = s.handle(clock.at(2.0), Event::ClientResults(b"{}".to_vec()));
        assert_eq!(out[0], Action::SendError(ErrorCode::RECV_RESULTS, 0));
        assert!(matches!(&out[1], Action::Finish(Some(_))));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::protocol::wire::COOKIE_LEN;
    use crate::testing::config;
    use proptest::prelude::*;

    const PARAMS: &[&[u8]] = &[
        br#"{"tcp":true,"time":2,"parallel":2}"#,
        br#"{"tcp":true,"time":0,"num":1000,"reverse":true}"#,
        br#"{"udp":true,"time":1,"bidirectional":true,"len":1400}"#,
        br#"{}"#,
        br#"{"parallel":500}"#,
        b"garbage",
    ];
    const RESULTS: &[&[u8]] = &[
        br#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":1,"streams":[{"id":1,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0}]}"#,
        br#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":0,"streams":[]}"#,
        br#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":0,"streams":[{"id":7,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0}]}"#,
        b"{}",
        b"\xff",
    ];

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            1 => any::<u8>().prop_map(|b| Event::Cookie(Cookie([b; COOKIE_LEN]))),
            1 => proptest::sample::select(PARAMS).prop_map(|p| Event::Params(p.to_vec())),
            1 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Event::Params),
            1 => Just(Event::ReadStarted),
            1 => proptest::option::of(Just(String::from("Connection reset by peer")))
                .prop_map(Event::ReadFailed),
            1 => Just(Event::Prepared),
            3 => Just(Event::StreamConnected),
            3 => any::<u8>().prop_map(Event::StateByte),
            3 => proptest::sample::select(&[1u8, 4, 12, 16][..]).prop_map(Event::StateByte),
            1 => Just(Event::Eof),
            1 => proptest::sample::select(RESULTS).prop_map(|r| Event::ClientResults(r.to_vec())),
            1 => Just(Event::DataProgress),
            1 => Just(Event::SendProgress),
            2 => Just(Event::Timeout),
            1 => Just(Event::Fault(ErrorCode::STREAM_ACCEPT, None)),
            1 => Just(Event::Shutdown(errors::SERVER_TERMINATED_TERM)),
        ]
    }

    /// Events with the milliseconds that passed before each.
    fn events() -> impl Strategy<Value = Vec<(u32, Event)>> {
        proptest::collection::vec((0u32..200_000, event()), 0..40)
    }

    proptest! {
        #![proptest_config(config(192))]

        #[test]
        fn any_event_sequence_ends_cleanly(seq in events()) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut s = Session::new(now, Limits::default());
            let mut finishes = 0;
            let mut ends = 0;
            let mut feed = |s: &mut Session, now: Instant, ev: Event| -> Result<(), TestCaseError> {
                let was_finished = s.phase() == Phase::Finished;
                let out = s.handle(now, ev);
                if was_finished {
                    prop_assert!(out.is_empty(), "actions after Finished: {:?}", out);
                }
                for (i, a) in out.iter().enumerate() {
                    match a {
                        Action::Finish(_) => {
                            finishes += 1;
                            prop_assert_eq!(i, out.len() - 1, "Finish is the last action");
                            prop_assert_eq!(s.phase(), Phase::Finished);
                        }
                        Action::EndTest => ends += 1,
                        Action::SendError(..) => {
                            prop_assert!(matches!(out.last(), Some(Action::Finish(Some(_)))));
                        }
                        _ => {}
                    }
                }
                prop_assert!(finishes <= 1 && ends <= 1);
                let idle = matches!(s.phase(), Phase::Preparing | Phase::Finished);
                prop_assert_eq!(s.deadline().is_none(), idle);
                prop_assert_eq!(s.expect() == Expect::Nothing, idle);
                if let Some(d) = s.deadline() {
                    prop_assert!(d >= t0);
                }
                Ok(())
            };
            for (ms, ev) in seq {
                now += Duration::from_millis(u64::from(ms));
                feed(&mut s, now, ev)?;
            }
            feed(&mut s, now, Event::Eof)?;
            prop_assert_eq!(s.phase(), Phase::Finished);
            prop_assert_eq!(finishes, 1);
            prop_assert_eq!(s.deadline(), None);
        }

        /// Whatever the client does, waiting out each deadline ends the
        /// session within a bounded number of timeouts.
        #[test]
        fn deadlines_alone_end_every_session(seq in events()) {
            let mut now = Instant::now();
            let mut s = Session::new(now, Limits::default());
            for (ms, ev) in seq {
                now += Duration::from_millis(u64::from(ms));
                s.handle(now, ev);
            }
            for _ in 0..3 {
                match s.phase() {
                    Phase::Finished => break,
                    // The driver answers Prepare at once.
                    Phase::Preparing => { s.handle(now, Event::Prepared); }
                    _ => {
                        now = s.deadline().expect("a waiting phase has a deadline").max(now);
                        s.handle(now, Event::Timeout);
                    }
                }
            }
            prop_assert_eq!(s.phase(), Phase::Finished);
        }
    }
}
