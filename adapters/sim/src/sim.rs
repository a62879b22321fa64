//! The simulator: a hub, a simulated adapter that executes its actions over
//! simulated sockets, and the invariant checker watching every call.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::testing::{Checker, Input, Outcome, Violation};
use tether_core::{Action, Event, Hub, ShutdownHow};

use crate::config::SimConfig;
use crate::net::Sockets;
use crate::op::Op;
use crate::trace::{Line, Trace};

mod exec;

/// What simulated peers send and the app sends: a recognisable pattern.
static PAYLOAD: [u8; 1 << 16] = pattern();

const fn pattern() -> [u8; 1 << 16] {
    let mut out = [0u8; 1 << 16];
    let mut i = 0;
    while i < out.len() {
        out[i] = (i % 251) as u8;
        i += 1;
    }
    out
}

/// Most deadlines one `wait` serves (a hub that keeps a deadline due
/// forever would otherwise loop: invariant 10).
const MAX_DEADLINES_PER_WAIT: usize = 10_000;

/// A deterministic simulated server. Feed it [`Op`]s (or trace lines); it
/// turns them into hub calls, executes the hub's actions on simulated
/// sockets the way a real adapter would, and (with checks on) checks every
/// call with a [`Checker`] plus the adapter's side of the contract.
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    hub: Hub,
    checker: Option<Checker>,
    start: Instant,
    /// The latest clock reading, in ms since start.
    clock_ms: u64,
    /// Set by `Op::Rewind`: the next op reads a clock this much earlier.
    skew_ms: u64,
    now: Instant,
    sockets: Sockets,
    pending: VecDeque<Action>,
    actions: Vec<Action>,
    events: Vec<Event>,
    payload: Bytes,
    next_port: u16,
    inputs: u64,
    restarts: u64,
    listener_paused: bool,
    trace: Option<Trace>,
    log: Option<Vec<String>>,
    violation: Option<Violation>,
}

impl Sim {
    /// A simulator for `config`, checking every call when `checks` is on.
    pub fn new(config: SimConfig, checks: bool) -> Sim {
        let hub_config = config.hub_config();
        let hub = Hub::new(hub_config.clone()).expect("SimConfig::hub_config is always valid");
        let start = Instant::now();
        let payload = if hub_config.queue_limit < PAYLOAD.len() {
            Bytes::from_static(&PAYLOAD)
        } else {
            let len = hub_config.queue_limit + 1;
            Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
        };
        Sim {
            checker: checks.then(|| Checker::new(&hub_config)),
            config,
            hub,
            start,
            clock_ms: 0,
            skew_ms: 0,
            now: start,
            sockets: Sockets::default(),
            pending: VecDeque::new(),
            actions: Vec::new(),
            events: Vec::new(),
            payload,
            next_port: 1024,
            inputs: 0,
            restarts: 0,
            listener_paused: false,
            trace: None,
            log: None,
            violation: None,
        }
    }

    /// Records every executed op as a trace line from now on.
    pub fn record(&mut self) {
        self.trace = Some(Trace::new(self.config.clone()));
    }

    /// Logs every hub call with its outcome, actions and events (for
    /// `tether-sim replay --verbose`).
    pub fn log_calls(&mut self) {
        self.log = Some(Vec::new());
    }

    /// The log lines gathered so far (empty unless [`log_calls`](Sim::log_calls)).
    pub fn take_log(&mut self) -> Vec<String> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The trace recorded so far, if recording.
    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    /// Hub calls made so far: the simulator's unit of throughput.
    pub fn inputs(&self) -> u64 {
        self.inputs
    }

    /// The hub, for inspection.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Runs one op (from a fuzzer or generator): `Advance` and `Rewind`
    /// become times of trace lines.
    pub fn run_op(&mut self, op: Op) -> Result<(), Violation> {
        match op {
            Op::Advance { ms } => {
                self.clock_ms += u64::from(ms);
                self.exec_line(self.clock_ms, Op::Advance { ms: 0 })
            }
            Op::Rewind { ms } => {
                self.skew_ms = u64::from(ms);
                Ok(())
            }
            op => {
                let at = self
                    .clock_ms
                    .saturating_sub(std::mem::take(&mut self.skew_ms));
                self.exec_line(at, op)
            }
        }
    }

    /// Runs one trace line: `op` at `at_ms` after the start. An earlier
    /// time than the previous line's is a clock that ran backwards.
    pub fn exec_line(&mut self, at_ms: u64, op: Op) -> Result<(), Violation> {
        if let Some(v) = &self.violation {
            return Err(v.clone());
        }
        // Record the connection index as resolved now, so the trace reads
        // `c2` rather than `c4098` (replaying it resolves the same way).
        let live = self.sockets.order.len().clamp(1, usize::from(u16::MAX)) as u16;
        let op = op.conn().map_or(op, |c| op.with_conn(c % live));
        if let Some(trace) = &mut self.trace {
            trace.lines.push(Line { at_ms, op });
        }
        if let Some(log) = &mut self.log {
            log.push(format!("@{at_ms} {op}"));
        }
        let prev_now = self.now;
        self.clock_ms = self.clock_ms.max(at_ms);
        self.now = self.start + Duration::from_millis(at_ms);
        if let Op::Advance { .. } = op {
            let target = self.now;
            self.now = prev_now.min(target);
            self.wait(target);
            self.now = target;
        } else {
            self.exec(op);
        }
        self.pump();
        if self.violation.is_none() && self.hub.is_shutdown_complete() {
            self.restart();
        }
        match &self.violation {
            Some(v) => Err(v.clone()),
            None => Ok(()),
        }
    }

    /// After a completed shutdown the server starts again: a fresh hub
    /// (and checker) on the same clock, so long runs go on.
    fn restart(&mut self) {
        let config = self.config.hub_config();
        self.hub = Hub::new(config.clone()).expect("SimConfig::hub_config is always valid");
        if self.checker.is_some() {
            self.checker = Some(Checker::new(&config));
        }
        self.sockets = Sockets::default();
        self.pending.clear();
        self.restarts += 1;
    }

    /// How many times the server shut down and started again.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    fn fail(&mut self, invariant: u8, message: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation::new(self.inputs, invariant, message));
        }
    }

    /// One hub call, checked; its actions are queued for [`pump`](Sim::pump).
    fn call(&mut self, input: Input) -> Outcome {
        self.inputs += 1;
        let outcome = if let Some(checker) = &mut self.checker {
            self.actions.clear();
            self.events.clear();
            let result = checker.step(
                &mut self.hub,
                self.now,
                &input,
                &mut self.actions,
                &mut self.events,
            );
            self.pending.extend(self.actions.iter().cloned());
            match result {
                Ok(outcome) => outcome,
                Err(v) => {
                    if self.violation.is_none() {
                        self.violation = Some(v);
                    }
                    Outcome::Rejected(tether_core::testing::Rejection::Unknown)
                }
            }
        } else {
            let outcome = input.apply(&mut self.hub, self.now);
            while let Some(a) = self.hub.poll_action() {
                self.pending.push_back(a);
            }
            while self.hub.poll_event().is_some() {}
            outcome
        };
        if let Some(log) = &mut self.log {
            let at = self.now.duration_since(self.start).as_millis();
            log.push(format!("    {at}ms {} -> {outcome:?}", describe(&input)));
            for a in &self.actions {
                let a = match a {
                    Action::Transmit { id, data } => {
                        format!("Transmit {{ id: {id}, len: {} }}", data.len())
                    }
                    other => format!("{other:?}"),
                };
                log.push(format!("      action {a}"));
            }
            for e in &self.events {
                log.push(format!("      event  {e:?}"));
            }
        }
        outcome
    }

    /// Executes queued actions (which may make more calls) until none is left.
    fn pump(&mut self) {
        while let Some(action) = self.pending.pop_front() {
            if self.violation.is_some() {
                self.pending.clear();
                return;
            }
            self.execute(action);
        }
    }

    /// What a real adapter does with one action, plus its contract checks.
    fn execute(&mut self, action: Action) {
        let Some(id) = action.channel() else {
            self.listener_paused = matches!(action, Action::PauseAccept);
            return;
        };
        let Some(sock) = self.sockets.get(id) else {
            return self.fail(6, format!("{action:?} names {id}, which has no socket"));
        };
        if sock.fd_closed {
            return self.fail(5, format!("{action:?} after the socket of {id} was closed"));
        }
        let mut wake_reader = false;
        let mut confirm_now = false;
        match action {
            Action::Transmit { data, .. } => {
                if sock.fin_sent || sock.rst_sent {
                    return self.fail(4, format!("Transmit on {id} after its FIN/RST"));
                }
                sock.transmitted += data.len() as u64;
                sock.unwritten_len += data.len();
                sock.unwritten.push_back(data);
            }
            Action::Shutdown { how, .. } => {
                if how == ShutdownHow::Write && sock.unwritten_len > 0 {
                    let n = sock.unwritten_len;
                    return self.fail(
                        3,
                        format!("FIN on {id} with {n} transmitted bytes unwritten"),
                    );
                }
                // Both: the hub dropped what was queued (an error); the
                // socket's buffer goes with it.
                sock.discard();
                sock.fin_sent |= !sock.rst_sent;
                wake_reader = how == ShutdownHow::Both;
            }
            Action::Abort { .. } => {
                sock.discard();
                sock.rst_sent = true;
                wake_reader = true;
            }
            Action::CloseSocket { .. } => {
                if sock.holders > 0 {
                    let h = sock.holders;
                    return self.fail(
                        5,
                        format!("CloseSocket of {id} while {h} holders still use it"),
                    );
                }
                sock.fd_closed = true;
                confirm_now = self.config.confirm_at_once;
                sock.confirm_pending = !confirm_now;
            }
            // Channel-less: handled above.
            Action::PauseAccept | Action::ResumeAccept => {}
        }
        if wake_reader && sock.reader_attached {
            // The reader wakes (EOF or error) and lets go.
            sock.reader_attached = false;
            sock.holders -= 1;
            self.call(Input::Detach { id });
        }
        if confirm_now {
            self.confirm(id);
        }
    }

    fn confirm(&mut self, id: tether_core::ChannelId) {
        if self.call(Input::Closed { id }) == Outcome::Ok {
            self.sockets.remove(id);
        }
    }
}

/// An input for the log, with payloads shown by length.
fn describe(input: &Input) -> String {
    match input {
        Input::Received { id, data } => format!("Received {{ id: {id}, len: {} }}", data.len()),
        Input::Send { id, data } => format!("Send {{ id: {id}, len: {} }}", data.len()),
        Input::Broadcast { data } => format!("Broadcast {{ len: {} }}", data.len()),
        Input::BroadcastTo { ids, data } => {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            format!(
                "BroadcastTo {{ ids: [{}], len: {} }}",
                ids.join(", "),
                data.len()
            )
        }
        other => format!("{other:?}"),
    }
}
