//! The control-channel state machine.

use std::time::Duration;

/// Timing limits of a test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest wait for the first byte of the cookie, parameters or results.
    pub read_start: Duration,
    /// Longest wait for a whole cookie, parameters or results message.
    pub read_total: Duration,
    /// Longest wait for all data streams to connect.
    pub streams: Duration,
    /// No data received for this long while receiving → error 144.
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
    /// The deadline from [`Session::deadline`] passed.
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
            Phase::Cookie | Phase::Params | Phase::Results | Phase::Done => {
                Some(self.phase_since + l.read_total)
            }
            Phase::Preparing => None,
            Phase::Streams => Some(self.phase_since + l.streams),
            Phase::Running => {
                let params = self.params.as_ref()?;
                let mut deadline = None;
                if let (Some(start), true) = (self.started, params.time > 0) {
                    let run = Duration::from_secs(u64::from(params.time) + u64::from(params.omit));
                    deadline = Some(start + run + l.grace);
                }
                if params.server_receives() {
                    let idle = self.last_progress + l.rcv_timeout;
                    deadline = Some(deadline.map_or(idle, |d: Instant| d.min(idle)));
                }
                deadline
            }
            Phase::Finished => None,
        }
    }

    fn enter(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.phase_since = now;
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
        let mut out = vec![Action::SendError(code, 0)];
        out.extend(self.finish(now, Some(code.log_text(os.as_deref()))));
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
                vec![
                    Action::Send(State::TestStart),
                    Action::Send(State::TestRunning),
                    Action::StartTest,
                ]
            }
            (P::Running, Event::DataProgress) => {
                self.last_progress = now;
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
            (phase, Event::Timeout) => {
                let code = match phase {
                    P::Cookie => ErrorCode::RECV_COOKIE,
                    P::Params => ErrorCode::RECV_PARAMS,
                    P::Streams => ErrorCode::STREAM_ACCEPT,
                    P::Results => ErrorCode::RECV_RESULTS,
                    P::Running => {
                        let idle = self.last_progress + self.limits.rcv_timeout;
                        let receives = self
                            .params
                            .as_ref()
                            .is_some_and(TestParams::server_receives);
                        if receives && now >= idle {
                            ErrorCode::NO_MSG
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
        assert_eq!(s.deadline(), Some(clock.at(30.0)));
        let out = s.handle(clock.at(30.0), Event::Timeout);
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
