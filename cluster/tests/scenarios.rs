//! One scenario per rule of docs/design.md §7, on the simulated broker
//! (every step also goes through the invariant checker).

use std::time::Duration;

use tether_cluster::testing::{Op, STALE, Sim};
use tether_cluster::{ClusterConfig, KickError, NodeDownReason, NodeName, Output};

fn sim(nodes: usize) -> Sim {
    let mut sim = Sim::new(nodes, ClusterConfig::default(), 1).expect("sim");
    sim.step(&Op::Advance { ms: 10 }).expect("start");
    sim
}

fn ms(ms: u16) -> Op {
    Op::Advance { ms }
}

/// Lines delivered at node `at`, as text, in order.
fn delivered(sim: &Sim, at: usize) -> Vec<String> {
    sim.events()
        .iter()
        .filter(|(_, n, _)| *n == at)
        .filter_map(|(_, _, o)| match o {
            Output::Deliver { text, .. } => Some(String::from_utf8_lossy(text).into_owned()),
            _ => None,
        })
        .collect()
}

fn answers(sim: &Sim) -> Vec<(u64, Result<(), KickError>, Duration)> {
    sim.events()
        .iter()
        .filter_map(|(t, _, o)| match o {
            Output::KickAnswer { request, result } => Some((*request, result.clone(), *t)),
            _ => None,
        })
        .collect()
}

fn node_down(sim: &Sim, at: usize, node: &NodeName) -> Option<(Duration, NodeDownReason)> {
    sim.events().iter().find_map(|(t, n, o)| match o {
        Output::NodeDown { node: down, why } if *n == at && down == node => Some((*t, *why)),
        _ => None,
    })
}

fn lines(n: u64, node: &str, incarnation: u64) -> Vec<String> {
    (1..=n)
        .map(|i| format!("{node}.{incarnation}.{i}"))
        .collect()
}

#[test]
fn every_line_reaches_every_other_node_once_in_order() {
    let mut sim = sim(3);
    sim.open(0).unwrap();
    for _ in 0..200 {
        sim.line(0, 0).unwrap();
    }
    sim.step(&ms(20)).unwrap();
    assert_eq!(delivered(&sim, 1), lines(200, "n0", 1));
    assert_eq!(delivered(&sim, 2), lines(200, "n0", 1));
    assert!(delivered(&sim, 0).is_empty(), "own echoes are ignored");
    sim.settle().unwrap();
}

#[test]
fn presence_is_replicated_and_follows_closes() {
    let mut sim = sim(3);
    for _ in 0..5 {
        sim.open(1).unwrap();
    }
    sim.step(&Op::Close { node: 1, pick: 2 }).unwrap();
    sim.step(&ms(5)).unwrap();
    let truth: Vec<_> = sim.channels(1).collect();
    let seen: Vec<_> = sim
        .cluster(0)
        .unwrap()
        .presence()
        .filter(|id| id.node.as_str() == "n1")
        .map(|id| id.id)
        .collect();
    assert_eq!(seen, truth);
    assert_eq!(seen.len(), 4);
    sim.converged().unwrap();
}

#[test]
fn a_killed_node_leaves_within_the_ttl() {
    let mut sim = sim(3);
    sim.open(2).unwrap();
    sim.step(&ms(500)).unwrap();
    let killed = sim.elapsed();
    sim.step(&Op::Crash { node: 2 }).unwrap();
    sim.step(&ms(3100)).unwrap();
    let n2 = sim.name(2).clone();
    for at in [0, 1] {
        let (when, why) = node_down(&sim, at, &n2).expect("n2 left");
        assert_eq!(why, NodeDownReason::Expired);
        assert!(
            when - killed <= ClusterConfig::default().ttl,
            "left after {:?}",
            when - killed
        );
        assert!(sim.cluster(at).unwrap().presence().all(|id| id.node != n2));
    }
    sim.settle().unwrap();
}

#[test]
fn a_goodbye_leaves_at_once() {
    let mut sim = sim(3);
    sim.open(2).unwrap();
    sim.step(&ms(5)).unwrap();
    let stopped = sim.elapsed();
    sim.step(&Op::Shutdown { node: 2 }).unwrap();
    sim.step(&ms(2)).unwrap();
    let n2 = sim.name(2).clone();
    for at in [0, 1] {
        let (when, why) = node_down(&sim, at, &n2).expect("n2 left");
        assert_eq!(why, NodeDownReason::Goodbye);
        assert!(when - stopped <= Duration::from_millis(1));
        assert_eq!(sim.cluster(at).unwrap().nodes(sim.now()).count(), 2);
    }
    sim.settle().unwrap();
}

#[test]
fn a_restart_with_a_new_incarnation_drops_the_old_presence() {
    let mut sim = sim(2);
    for _ in 0..3 {
        sim.open(1).unwrap();
    }
    sim.step(&ms(5)).unwrap();
    sim.step(&Op::Crash { node: 1 }).unwrap();
    sim.step(&Op::Restart { node: 1 }).unwrap();
    let fresh = sim.open(1).unwrap().unwrap();
    sim.step(&ms(5)).unwrap();
    let n1 = sim.name(1).clone();
    assert_eq!(
        node_down(&sim, 0, &n1).map(|d| d.1),
        Some(NodeDownReason::Restarted)
    );
    let seen: Vec<_> = sim
        .cluster(0)
        .unwrap()
        .presence()
        .filter(|id| id.node == n1)
        .map(|id| id.id)
        .collect();
    assert_eq!(seen, [fresh]);
    let info = sim
        .cluster(0)
        .unwrap()
        .nodes(sim.now())
        .find(|n| n.name == n1)
        .unwrap();
    assert_eq!(info.incarnation, 2);
    sim.settle().unwrap();
}

#[test]
fn the_outbox_holds_a_3s_outage_and_delivers_in_order() {
    let mut sim = sim(3);
    sim.open(0).unwrap();
    sim.step(&Op::BrokerStop).unwrap();
    for _ in 0..50 {
        sim.line(0, 0).unwrap();
        sim.step(&ms(60)).unwrap();
    }
    let held = sim.cluster(0).unwrap().stats();
    assert_eq!((held.lines_buffered, held.lines_lost), (50, 0));
    sim.step(&Op::BrokerStart).unwrap();
    sim.step(&ms(10)).unwrap();
    assert_eq!(delivered(&sim, 1), lines(50, "n0", 1));
    assert_eq!(delivered(&sim, 2), lines(50, "n0", 1));
    let after = sim.cluster(0).unwrap().stats();
    assert_eq!(
        (after.lines_buffered, after.lines_replayed, after.reconnects),
        (0, 50, 1)
    );
    sim.settle().unwrap();
}

#[test]
fn an_outbox_overflow_is_counted_and_reported_never_silent() {
    let mut config = ClusterConfig::default();
    config.outbox_bytes = 1000;
    let mut sim = Sim::new(2, config, 1).unwrap();
    sim.open(0).unwrap();
    sim.step(&Op::BrokerStop).unwrap();
    for _ in 0..100 {
        sim.line(0, 0).unwrap();
    }
    let stats = sim.cluster(0).unwrap().stats();
    assert!(stats.outbox_bytes <= 1000);
    assert_eq!(stats.lines_buffered + stats.lines_lost, 100);
    assert!(stats.lines_lost > 50);
    let reported: u64 = sim
        .events()
        .iter()
        .filter_map(|(_, n, o)| match o {
            Output::Lost { node, messages } if *n == 0 && node.as_str() == "n0" => Some(*messages),
            _ => None,
        })
        .sum();
    assert_eq!(reported, stats.lines_lost);
    sim.step(&Op::BrokerStart).unwrap();
    sim.step(&ms(10)).unwrap();
    let got = delivered(&sim, 1);
    assert_eq!(
        got,
        lines(stats.lines_buffered, "n0", 1),
        "the first lines, in order"
    );
    sim.settle().unwrap();
}

#[test]
fn a_kick_happens_on_its_owner_and_answers_ok() {
    let mut sim = sim(3);
    let id = sim.open(2).unwrap().unwrap();
    sim.step(&ms(5)).unwrap();
    let request = sim.kick(0, 2, id).unwrap();
    sim.step(&ms(5)).unwrap();
    assert_eq!(answers(&sim), [(request, Ok(()), answers(&sim)[0].2)]);
    assert!(answers(&sim)[0].2 - Duration::from_millis(15) <= Duration::from_millis(2));
    assert_eq!(sim.channels(2).count(), 0);
    assert!(sim.cluster(1).unwrap().presence().all(|n| n.id != id));
    sim.settle().unwrap();
}

#[test]
fn a_kick_of_a_stale_id_answers_stale() {
    let mut sim = sim(2);
    sim.step(&ms(5)).unwrap();
    let request = sim.kick(0, 1, STALE).unwrap();
    sim.step(&ms(5)).unwrap();
    assert_eq!(answers(&sim)[0].0, request);
    assert_eq!(answers(&sim)[0].1, Err(KickError::Stale));
    sim.settle().unwrap();
}

#[test]
fn a_kick_to_a_node_that_is_not_live_answers_unknown_node_at_once() {
    let mut sim = sim(3);
    sim.step(&Op::Crash { node: 2 }).unwrap();
    sim.step(&ms(3100)).unwrap();
    let at = sim.elapsed();
    sim.kick(0, 2, STALE).unwrap();
    let (_, result, when) = answers(&sim)[0].clone();
    assert_eq!(result, Err(KickError::UnknownNode("n2".parse().unwrap())));
    assert_eq!(when, at);
    sim.settle().unwrap();
}

#[test]
fn a_kick_while_the_broker_is_down_answers_unavailable_at_once() {
    let mut sim = sim(2);
    let id = sim.open(1).unwrap().unwrap();
    sim.step(&ms(5)).unwrap();
    sim.step(&Op::BrokerStop).unwrap();
    let at = sim.elapsed();
    sim.kick(0, 1, id).unwrap();
    assert_eq!(answers(&sim)[0].1, Err(KickError::Unavailable));
    assert_eq!(answers(&sim)[0].2, at);
    sim.settle().unwrap();
}

#[test]
fn a_kick_nobody_answers_is_unavailable_at_the_timeout() {
    let mut sim = sim(2);
    let id = sim.open(1).unwrap().unwrap();
    sim.step(&ms(5)).unwrap();
    sim.step(&Op::Partition { node: 1 }).unwrap();
    let at = sim.elapsed();
    sim.kick(0, 1, id).unwrap();
    sim.step(&ms(2000)).unwrap();
    let (_, result, when) = answers(&sim)[0].clone();
    assert_eq!(result, Err(KickError::Unavailable));
    assert_eq!(when - at, ClusterConfig::default().timeout);
    assert!(sim.cluster(0).unwrap().stats().kicks_resent >= 3);
    sim.settle().unwrap();
}

#[test]
fn kicks_happen_exactly_once_when_every_message_is_duplicated() {
    let mut sim = sim(3);
    let ids: Vec<_> = (0..40).map(|_| sim.open(2).unwrap().unwrap()).collect();
    sim.step(&ms(5)).unwrap();
    sim.step(&Op::Faults {
        drop: 0,
        dup: 255,
        delay_ms: 20,
    })
    .unwrap();
    let requests: Vec<_> = ids.iter().map(|&id| sim.kick(0, 2, id).unwrap()).collect();
    sim.step(&ms(1100)).unwrap();
    let got = answers(&sim);
    assert_eq!(got.len(), 40);
    for request in requests {
        let (_, result, _) = got.iter().find(|a| a.0 == request).unwrap();
        assert_eq!(*result, Ok(()), "kick {request}");
    }
    // The checker refused any second execution; the owner remembered repeats.
    let owner = sim.cluster(2).unwrap().stats();
    assert_eq!(owner.kicks_served, 40);
    assert_eq!(sim.channels(2).count(), 0);
    sim.settle().unwrap();
}

#[test]
fn kicks_under_loss_are_re_sent_executed_at_most_once_and_always_answered() {
    let mut sim = sim(2);
    let ids: Vec<_> = (0..60).map(|_| sim.open(1).unwrap().unwrap()).collect();
    sim.step(&ms(5)).unwrap();
    sim.step(&Op::Faults {
        drop: 100,
        dup: 60,
        delay_ms: 40,
    })
    .unwrap();
    for &id in &ids {
        sim.kick(0, 1, id).unwrap();
    }
    sim.step(&ms(1100)).unwrap();
    let got = answers(&sim);
    assert_eq!(got.len(), 60);
    let ok = got.iter().filter(|a| a.1.is_ok()).count();
    assert!(ok > 30, "re-sends got most kicks through: {ok}");
    assert!(sim.cluster(0).unwrap().stats().kicks_resent > 0);
    sim.settle().unwrap();
}

#[test]
fn gaps_from_lost_messages_are_counted_and_presence_recovers() {
    let mut sim = sim(3);
    sim.open(0).unwrap();
    sim.step(&Op::Faults {
        drop: 128,
        dup: 0,
        delay_ms: 0,
    })
    .unwrap();
    for _ in 0..50 {
        sim.open(0).unwrap();
        sim.line(0, 3).unwrap();
    }
    sim.step(&Op::Calm).unwrap();
    sim.step(&ms(10)).unwrap();
    sim.step(&ms(2500)).unwrap();
    let stats = sim.cluster(1).unwrap().stats();
    assert!(stats.gaps > 0 && stats.messages_lost > 0, "{stats:?}");
    sim.converged().unwrap();
    sim.settle().unwrap();
}

#[test]
fn a_partitioned_node_comes_back_with_its_presence() {
    let mut sim = sim(3);
    sim.step(&Op::Partition { node: 1 }).unwrap();
    for _ in 0..3 {
        sim.open(1).unwrap();
        sim.open(0).unwrap();
    }
    sim.step(&ms(4000)).unwrap();
    let n1 = sim.name(1).clone();
    assert!(!sim.cluster(0).unwrap().is_live(&n1));
    sim.step(&Op::Heal { node: 1 }).unwrap();
    sim.step(&ms(1500)).unwrap();
    sim.converged().unwrap();
    sim.settle().unwrap();
}

#[test]
fn a_kick_held_by_a_paused_broker_past_its_timeout_is_not_executed_later() {
    let mut sim = sim(2);
    let id = sim.open(1).unwrap().unwrap();
    sim.step(&ms(1500)).unwrap(); // heartbeats: each node knows the other's fastest delay
    sim.step(&Op::Stall { ms: 3000 }).unwrap();
    let at = sim.elapsed();
    let request = sim.kick(0, 1, id).unwrap();
    sim.step(&ms(1100)).unwrap();
    let (_, result, when) = answers(&sim)[0].clone();
    assert_eq!(
        (answers(&sim)[0].0, result),
        (request, Err(KickError::Unavailable))
    );
    assert_eq!(when - at, ClusterConfig::default().timeout);
    // The broker resumes: the owner gets the request (and its re-sends),
    // sees it arrived too late for any reply to matter, and drops it.
    sim.step(&ms(2500)).unwrap();
    assert_eq!(sim.channels(1).collect::<Vec<_>>(), [id]);
    let owner = sim.cluster(1).unwrap().stats();
    assert_eq!(owner.kicks_served, 0);
    assert!(owner.kicks_expired >= 1, "{owner:?}");
    assert!(
        !sim.events()
            .iter()
            .any(|(_, _, o)| matches!(o, Output::ExecuteKick { .. }))
    );
    sim.settle().unwrap();
}

#[test]
fn a_short_broker_pause_delays_a_kick_without_losing_it() {
    let mut sim = sim(2);
    let id = sim.open(1).unwrap().unwrap();
    sim.step(&ms(1500)).unwrap();
    sim.step(&Op::Stall { ms: 100 }).unwrap();
    let request = sim.kick(0, 1, id).unwrap();
    sim.step(&ms(1100)).unwrap();
    assert_eq!(answers(&sim)[0].0, request);
    assert_eq!(answers(&sim)[0].1, Ok(()));
    assert_eq!(sim.channels(1).count(), 0);
    sim.settle().unwrap();
}
