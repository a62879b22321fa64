use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_core::{Action, Bytes, Config, Event, Hub, Input, KickMode, Outcome};

use super::{HubObserver, ObservedHub, ObserverError, ObserverStats, Step};

/// What the test observer saw: each input with its outcome and how many
/// actions and events it produced.
type Seen = Arc<Mutex<Vec<(Input, Outcome, usize, usize)>>>;

#[derive(Debug)]
struct Log {
    seen: Seen,
    active: bool,
    befores: u64,
}

impl HubObserver for Log {
    fn is_active(&self) -> bool {
        self.active
    }
    fn before_input(&mut self, _hub: &Hub) {
        self.befores += 1;
    }
    fn after_input(&mut self, step: Step<'_>) {
        let (a, e) = (step.actions.count(), step.events.count());
        let mut seen = self.seen.lock().unwrap();
        seen.push((step.input, step.outcome, a, e));
    }
    fn flush(&mut self) -> Result<(), ObserverError> {
        Ok(())
    }
    fn finish(&mut self) -> Result<(), ObserverError> {
        self.active = false;
        Err("finished".into())
    }
    fn take_error(&mut self) -> Option<ObserverError> {
        None
    }
    fn stats(&self) -> ObserverStats {
        ObserverStats {
            lines: self.befores,
            ..ObserverStats::default()
        }
    }
}

fn drain(hub: &mut ObservedHub) -> (Vec<Action>, Vec<Event>) {
    (
        std::iter::from_fn(|| hub.poll_action()).collect(),
        std::iter::from_fn(|| hub.poll_event()).collect(),
    )
}

fn drain_plain(hub: &mut Hub) -> (Vec<Action>, Vec<Event>) {
    (
        std::iter::from_fn(|| hub.poll_action()).collect(),
        std::iter::from_fn(|| hub.poll_event()).collect(),
    )
}

#[test]
fn an_observer_sees_every_input_and_the_outputs_are_unchanged() {
    let now = Instant::now();
    let seen = Seen::default();
    let log = Log {
        seen: seen.clone(),
        active: true,
        befores: 0,
    };
    let mut plain = Hub::new(Config::default()).unwrap();
    let mut hub =
        ObservedHub::observed(Hub::new(Config::default()).unwrap(), |_| Ok(Box::new(log))).unwrap();
    let peer = "127.0.0.1:4000".parse().unwrap();
    let id = hub.accept(now, peer).unwrap();
    assert_eq!(plain.accept(now, peer).unwrap(), id);
    hub.attach(now, id).unwrap();
    plain.attach(now, id).unwrap();
    let data = Bytes::from_static(b"hi\n");
    hub.send(now, id, data.clone()).unwrap();
    plain.send(now, id, data).unwrap();
    hub.kick(now, id, KickMode::Abort, 7).unwrap();
    plain.kick(now, id, KickMode::Abort, 7).unwrap();
    assert!(hub.kick(now, id, KickMode::Abort, 7).is_err());
    hub.shutdown(now, Duration::from_secs(1));
    plain.shutdown(now, Duration::from_secs(1));
    assert_eq!(drain(&mut hub), drain_plain(&mut plain));
    let seen = seen.lock().unwrap();
    let inputs: Vec<&Input> = seen.iter().map(|(input, ..)| input).collect();
    assert_eq!(inputs.len(), 6);
    assert_eq!(*inputs[0], Input::Accept { peer });
    assert_eq!(seen[0].1, Outcome::Opened(id));
    assert!(matches!(seen[4].1, Outcome::Rejected(_)));
    assert!(seen[3].2 > 0, "the kick's abort was shown: {seen:?}");
    assert_eq!(hub.observer_stats().unwrap().lines, 6);
    assert!(hub.is_observed());
    assert!(hub.finish().is_err());
    assert!(!hub.is_observed());
    // Finished: forwarded, not shown.
    hub.handle_timeout(now);
    assert_eq!(seen.len(), 6);
}

#[test]
fn without_an_observer_every_call_is_forwarded() {
    let now = Instant::now();
    let mut hub = ObservedHub::new(Hub::new(Config::default()).unwrap());
    let id = hub.accept(now, "127.0.0.1:4000".parse().unwrap()).unwrap();
    assert!(!hub.is_observed());
    assert_eq!(hub.observer_stats(), None);
    assert!(matches!(hub.poll_event(), Some(Event::Opened { id: opened, .. }) if opened == id));
    assert!(hub.flush().is_ok() && hub.finish().is_ok() && hub.take_error().is_none());
    assert_eq!(hub.into_inner().live(), 1);
}

#[test]
fn every_input_goes_through_handle_input_and_is_seen_once() {
    use tether_core::{Answer, DisconnectReason};
    let now = Instant::now();
    let seen = Seen::default();
    let log = Log {
        seen: seen.clone(),
        active: true,
        befores: 0,
    };
    let mut hub =
        ObservedHub::observed(Hub::new(Config::default()).unwrap(), |_| Ok(Box::new(log))).unwrap();
    let peer = "127.0.0.1:4000".parse().unwrap();
    let Answer::Accept(Ok(a)) = hub.handle_input(now, Input::Accept { peer }) else {
        panic!("accepted")
    };
    let b = hub.accept(now, peer).unwrap();
    let to = Input::BroadcastTo {
        ids: vec![a, b, a],
        data: Bytes::from_static(b"x"),
    };
    let Answer::Broadcast(report) = hub.handle_input(now, to.clone()) else {
        panic!("a broadcast's answer")
    };
    assert_eq!((report.sent, report.refused.len()), (3, 0));
    let kick = Input::KickWithReason {
        id: b,
        mode: KickMode::Abort,
        reason: DisconnectReason::SlowConsumer,
    };
    assert_eq!(hub.handle_input(now, kick.clone()).outcome(), Outcome::Ok);
    let (_, events) = drain(&mut hub);
    let reason = DisconnectReason::SlowConsumer;
    assert!(events.contains(&Event::Disconnected { id: b, reason }));
    let seen = seen.lock().unwrap();
    let got: Vec<(Input, Outcome)> = seen.iter().map(|(i, o, ..)| (i.clone(), *o)).collect();
    assert_eq!(got.len(), 4);
    assert_eq!(
        got[2],
        (
            to,
            Outcome::Broadcast {
                sent: 3,
                refused: 0
            }
        )
    );
    assert_eq!(got[3], (kick, Outcome::Ok));
    assert_eq!(hub.observer_stats().unwrap().lines, 4);
}
