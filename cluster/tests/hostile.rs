//! Hostile payloads and inputs: a typed error or a defined transition,
//! never a panic (docs/design.md §7, C1, C9).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_cluster::wire::{self, Body, DecodeError, Header, Message};
use tether_cluster::{
    ChannelId, Cluster, ClusterConfig, ClusterConfigError, Input, KickError, KickMode, KickResult,
    NodeId, NodeName, Output,
};

fn name(s: &str) -> NodeName {
    s.parse().unwrap()
}

fn id(slot: u32) -> ChannelId {
    ChannelId::from_parts(0, slot, 1).unwrap()
}

fn message(node: &str, seq: u64, body: Body) -> Message {
    Message {
        header: Header {
            node: name(node),
            incarnation: 1,
            seq,
            clock_ms: 0,
        },
        body,
    }
}

/// One of every kind of message.
fn every_kind() -> Vec<Message> {
    vec![
        message("x", 0, Body::Heartbeat { channels: 3 }),
        message(
            "x",
            1,
            Body::Line {
                id: id(1),
                text: Bytes::from_static(b"hello"),
            },
        ),
        message("x", 2, Body::Opened(id(2))),
        message("x", 3, Body::Closed(id(2))),
        message("x", 4, Body::Snapshot(vec![id(1), id(3)])),
        message("x", 5, Body::SnapshotRequest { target: name("me") }),
        message(
            "x",
            5,
            Body::Kick {
                target: name("me"),
                target_incarnation: 1,
                request: 9,
                id: id(1),
                mode: KickMode::Abort,
                remaining_ms: 900,
                reason: "spam ☃".into(),
            },
        ),
        message(
            "x",
            5,
            Body::KickReply {
                origin: name("me"),
                origin_incarnation: 1,
                request: 9,
                result: KickResult::Stale,
            },
        ),
        message("x", 5, Body::Goodbye),
    ]
}

fn machine() -> (Cluster, Instant) {
    let now = Instant::now();
    let mut cluster = Cluster::new(ClusterConfig::default(), name("me"), 1, now).unwrap();
    cluster.handle_input(now, Input::BrokerUp);
    drain(&mut cluster);
    (cluster, now)
}

fn drain(cluster: &mut Cluster) -> Vec<Output> {
    std::iter::from_fn(|| cluster.poll_output()).collect()
}

fn published(outputs: &[Output]) -> Vec<Body> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Publish(p) => Some(wire::decode(p).unwrap().body),
            _ => None,
        })
        .collect()
}

#[test]
fn every_kind_round_trips() {
    for m in every_kind() {
        assert_eq!(wire::decode(&wire::encode(&m)), Ok(m));
    }
}

#[test]
fn every_truncation_and_extension_is_a_typed_error() {
    for m in every_kind() {
        let full = wire::encode(&m);
        for len in 0..full.len() {
            let cut = full.slice(..len);
            // Lines and kicks end in free text: a shorter one may decode, but
            // never as the same message.
            if let Ok(other) = wire::decode(&cut) {
                assert_ne!(other, m);
                assert!(matches!(other.body, Body::Line { .. } | Body::Kick { .. }));
            }
        }
        let mut longer = full.to_vec();
        longer.push(0);
        let longer = wire::decode(&Bytes::from(longer));
        assert!(longer.is_err() || matches!(m.body, Body::Line { .. } | Body::Kick { .. }));
    }
}

#[test]
fn hostile_headers_and_counts_are_refused() {
    let good = wire::encode(&message("x", 0, Body::Snapshot(vec![id(1)])));
    let mut wrong_version = good.to_vec();
    wrong_version[0] = 2;
    assert_eq!(
        wire::decode(&Bytes::from(wrong_version)),
        Err(DecodeError::Version(2))
    );
    let mut wrong_kind = good.to_vec();
    wrong_kind[1] = 200;
    assert_eq!(
        wire::decode(&Bytes::from(wrong_kind)),
        Err(DecodeError::Kind(200))
    );
    let mut bad_name = good.to_vec();
    bad_name[3] = b'/';
    assert!(matches!(
        wire::decode(&Bytes::from(bad_name)),
        Err(DecodeError::Name(_))
    ));
    let mut long_name = good.to_vec();
    long_name[2] = 255;
    assert!(wire::decode(&Bytes::from(long_name)).is_err());
    // A snapshot claiming u32::MAX ids in 8 bytes allocates nothing.
    let mut huge = good.to_vec();
    let count_at = 2 + 1 + 1 + 24;
    huge[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(wire::decode(&Bytes::from(huge)), Err(DecodeError::Length));
    let kick = wire::encode(&every_kind()[6]);
    let mut bad_mode = kick.to_vec();
    let mode_at = 2 + 2 + 24 + 3 + 24;
    bad_mode[mode_at] = 7;
    assert_eq!(
        wire::decode(&Bytes::from(bad_mode)),
        Err(DecodeError::Code(7))
    );
    let mut bad_reason = kick.to_vec();
    bad_reason.push(0xff);
    assert_eq!(
        wire::decode(&Bytes::from(bad_reason)),
        Err(DecodeError::Reason)
    );
    let mut long_reason = kick.to_vec();
    long_reason.extend(std::iter::repeat_n(b'a', 2000));
    assert_eq!(
        wire::decode(&Bytes::from(long_reason)),
        Err(DecodeError::Reason)
    );
}

#[test]
fn garbage_is_counted_and_ignored() {
    let (mut cluster, now) = machine();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for len in 0..2000usize {
        let bytes: Vec<u8> = (0..len % 97)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        cluster.handle_input(now, Input::Received(Bytes::from(bytes)));
    }
    let stats = cluster.stats();
    assert!(stats.decode_errors >= 1990, "{stats:?}");
    assert_eq!(cluster.nodes(now).count(), 1);
}

#[test]
fn own_echoes_are_ignored() {
    let (mut cluster, now) = machine();
    cluster.handle_input(now, Input::Opened(id(1)));
    cluster.handle_input(
        now,
        Input::Line {
            from: id(1),
            text: Bytes::from_static(b"hi"),
        },
    );
    for output in drain(&mut cluster) {
        if let Output::Publish(p) = output {
            cluster.handle_input(now, Input::Received(p));
        }
    }
    assert!(drain(&mut cluster).is_empty());
    assert_eq!(cluster.stats().received, 0);
}

#[test]
fn duplicates_reorders_and_gaps_in_one_stream() {
    let (mut cluster, now) = machine();
    let line = |seq: u64, n: u8| {
        wire::encode(&message(
            "x",
            seq,
            Body::Line {
                id: id(1),
                text: Bytes::from(vec![b'a' + n]),
            },
        ))
    };
    let texts = |outputs: &[Output]| -> Vec<u8> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Deliver { text, .. } => Some(text[0]),
                _ => None,
            })
            .collect()
    };
    cluster.handle_input(now, Input::Received(line(0, 0)));
    cluster.handle_input(now, Input::Received(line(2, 2)));
    cluster.handle_input(now, Input::Received(line(1, 1)));
    cluster.handle_input(now, Input::Received(line(1, 1)));
    cluster.handle_input(now, Input::Received(line(0, 0)));
    assert_eq!(texts(&drain(&mut cluster)), b"abc");
    assert_eq!(cluster.stats().duplicates, 2);
    // 3 and 4 never come: 5 waits a gap_wait, then the gap is lost.
    cluster.handle_input(now, Input::Received(line(5, 5)));
    assert!(texts(&drain(&mut cluster)).is_empty());
    // Timers run (a snapshot owed to the newcomer x, spaced); the gap is
    // declared lost exactly at its gap_wait.
    let gap_at = now + ClusterConfig::default().gap_wait;
    let mut outputs = Vec::new();
    while let Some(deadline) = cluster.poll_timeout().filter(|&t| t <= gap_at) {
        assert!(texts(&outputs).is_empty(), "nothing before the gap_wait");
        cluster.handle_input(deadline, Input::Timeout);
        outputs = drain(&mut cluster);
    }
    assert_eq!(texts(&outputs), b"f");
    assert!(outputs.contains(&Output::Lost {
        node: name("x"),
        messages: 2
    }));
    assert!(published(&outputs).contains(&Body::SnapshotRequest { target: name("x") }));
    let stats = cluster.stats();
    assert_eq!((stats.gaps, stats.messages_lost), (1, 2));
}

#[test]
fn a_full_reorder_window_skips_at_once_and_stays_bounded() {
    let (mut cluster, now) = machine();
    let heartbeat = |seq| wire::encode(&message("x", seq, Body::Heartbeat { channels: 0 }));
    cluster.handle_input(now, Input::Received(heartbeat(0)));
    for seq in 2..2000 {
        cluster.handle_input(now, Input::Received(heartbeat(seq * 2)));
        assert!(cluster.footprint().early_messages <= ClusterConfig::default().reorder_window);
    }
    assert!(cluster.stats().gaps > 0);
}

#[test]
fn a_hostile_peer_cannot_grow_presence_past_its_bound() {
    let (mut cluster, now) = machine();
    let ids: Vec<ChannelId> = (0..50_000).map(ChannelId::from_raw).collect();
    let snapshot = wire::encode(&message("x", 0, Body::Snapshot(ids)));
    cluster.handle_input(now, Input::Received(snapshot));
    assert_eq!(cluster.presence().count(), 50_000);
    for name_n in 0..2000 {
        let m = message(&format!("n{name_n}"), 0, Body::Heartbeat { channels: 0 });
        cluster.handle_input(now, Input::Received(wire::encode(&m)));
    }
    assert!(cluster.footprint().peers <= tether_cluster::MAX_NODES);
    assert!(cluster.stats().nodes_refused > 0);
    drain(&mut cluster);
}

#[test]
fn time_running_backwards_changes_nothing_and_panics_nowhere() {
    let (mut cluster, now) = machine();
    let m = message("x", 0, Body::Heartbeat { channels: 0 });
    cluster.handle_input(
        now + Duration::from_secs(10),
        Input::Received(wire::encode(&m)),
    );
    // Earlier instants count as the latest one: x heard at +10 s stays live.
    cluster.handle_input(now, Input::Timeout);
    cluster.handle_input(now + Duration::from_secs(12), Input::Timeout);
    assert!(cluster.is_live(&name("x")));
    cluster.handle_input(now + Duration::from_secs(13), Input::Timeout);
    assert!(!cluster.is_live(&name("x")));
    assert!(cluster.poll_timeout().unwrap() > now + Duration::from_secs(13));
}

#[test]
fn inputs_after_shutdown_do_nothing_and_kicks_are_unavailable() {
    let (mut cluster, now) = machine();
    let m = message("x", 0, Body::Heartbeat { channels: 0 });
    cluster.handle_input(now, Input::Received(wire::encode(&m)));
    cluster.handle_input(now, Input::Shutdown);
    let outputs = drain(&mut cluster);
    assert_eq!(published(&outputs).last(), Some(&Body::Goodbye));
    assert_eq!(cluster.poll_timeout(), None);
    cluster.handle_input(now, Input::BrokerUp);
    cluster.handle_input(
        now,
        Input::Line {
            from: id(1),
            text: Bytes::new(),
        },
    );
    cluster.handle_input(now, Input::Received(wire::encode(&m)));
    let target = NodeId {
        node: name("x"),
        id: id(1),
    };
    cluster.handle_input(
        now,
        Input::Kick {
            request: 1,
            target,
            mode: KickMode::Graceful,
            reason: String::new(),
        },
    );
    assert_eq!(
        drain(&mut cluster),
        [Output::KickAnswer {
            request: 1,
            result: Err(KickError::Unavailable)
        }]
    );
    assert_eq!(cluster.nodes(now).count(), 0);
}

#[test]
fn kicks_of_this_node_and_repeated_tags_are_refused() {
    let (mut cluster, now) = machine();
    let m = message("x", 0, Body::Heartbeat { channels: 0 });
    cluster.handle_input(now, Input::Received(wire::encode(&m)));
    drain(&mut cluster);
    let kick = |node: &str, request| Input::Kick {
        request,
        target: NodeId {
            node: name(node),
            id: id(1),
        },
        mode: KickMode::Graceful,
        reason: "x".repeat(5000),
    };
    cluster.handle_input(now, kick("me", 1));
    cluster.handle_input(now, kick("x", 2));
    cluster.handle_input(now, kick("x", 2));
    cluster.handle_input(now, kick("nobody", 3));
    let answers: Vec<_> = drain(&mut cluster)
        .into_iter()
        .filter_map(|o| match o {
            Output::KickAnswer { request, result } => Some((request, result)),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [
            (1, Err(KickError::Local)),
            (2, Err(KickError::DuplicateRequest)),
            (3, Err(KickError::UnknownNode(name("nobody")))),
        ]
    );
}

#[test]
fn a_kick_for_an_earlier_incarnation_is_stale_without_executing() {
    let (mut cluster, now) = machine();
    let kick = message(
        "x",
        0,
        Body::Kick {
            target: name("me"),
            target_incarnation: 0,
            request: 4,
            id: id(1),
            mode: KickMode::Graceful,
            remaining_ms: 1000,
            reason: String::new(),
        },
    );
    cluster.handle_input(now, Input::Received(wire::encode(&kick)));
    let outputs = drain(&mut cluster);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::ExecuteKick { .. }))
    );
    assert!(published(&outputs).iter().any(|b| matches!(
        b,
        Body::KickReply {
            result: KickResult::Stale,
            ..
        }
    )));
}

#[test]
fn configs_that_cannot_work_are_refused() {
    let now = Instant::now();
    type Change = fn(&mut ClusterConfig);
    let cases: [(Change, ClusterConfigError); 6] = [
        (
            |c| c.heartbeat = Duration::ZERO,
            ClusterConfigError::TooShort { field: "heartbeat" },
        ),
        (
            |c| c.timeout = Duration::ZERO,
            ClusterConfigError::TooShort { field: "timeout" },
        ),
        (
            |c| c.ttl = c.heartbeat,
            ClusterConfigError::HeartbeatNotBelowTtl,
        ),
        (
            |c| c.ttl = Duration::MAX,
            ClusterConfigError::TooLong { field: "ttl" },
        ),
        (
            |c| c.outbox_bytes = usize::MAX,
            ClusterConfigError::OutboxTooLarge { bytes: usize::MAX },
        ),
        (
            |c| c.reorder_window = 0,
            ClusterConfigError::ReorderWindow { window: 0 },
        ),
    ];
    for (change, error) in cases {
        let mut config = ClusterConfig::default();
        change(&mut config);
        assert_eq!(config.validate(), Err(error.clone()));
        assert_eq!(Cluster::new(config, name("me"), 1, now).err(), Some(error));
    }
}

#[test]
fn names_and_ids_parse_strictly() {
    assert!("n1".parse::<NodeName>().is_ok());
    assert!("a".repeat(32).parse::<NodeName>().is_ok());
    for bad in ["", "a b", "é", "n1/x", &"a".repeat(33)] {
        assert!(bad.parse::<NodeName>().is_err(), "{bad:?}");
    }
    let id: NodeId = "n1/#0:3.1".parse().unwrap();
    assert_eq!(id.to_string(), "n1/#3.1");
    for bad in ["n1", "/#3.1", "n1/", "n1/#x", "n 1/#3.1"] {
        assert!(bad.parse::<NodeId>().is_err(), "{bad:?}");
    }
}

#[test]
fn stats_snapshot_names_every_counter_under_cluster() {
    let (cluster, _) = machine();
    let snapshot = cluster.stats().snapshot();
    assert!(snapshot.iter().all(|(k, _)| k.starts_with("cluster.")));
    for key in [
        "cluster.published",
        "cluster.received",
        "cluster.broker_errors",
        "cluster.reconnects",
        "cluster.live_nodes",
        "cluster.lines_lost",
        "cluster.lines_buffered",
        "cluster.outbox_bytes",
        "cluster.duplicates",
        "cluster.gaps",
        "cluster.decode_errors",
        "cluster.kicks_sent",
        "cluster.kicks_served",
        "cluster.kicks_timed_out",
    ] {
        assert!(snapshot.iter().any(|(k, _)| *k == key), "{key}");
    }
    assert_eq!(
        snapshot
            .iter()
            .find(|(k, _)| *k == "cluster.live_nodes")
            .unwrap()
            .1,
        1
    );
}

#[test]
fn a_goodbye_is_final_for_its_incarnation_and_a_backwards_restart_waits_a_ttl() {
    let (mut cluster, now) = machine();
    let from = |incarnation, seq, body| {
        let mut m = message("x", seq, body);
        m.header.incarnation = incarnation;
        Input::Received(wire::encode(&m))
    };
    cluster.handle_input(now, from(5, 0, Body::Heartbeat { channels: 0 }));
    cluster.handle_input(now, from(5, 1, Body::Goodbye));
    assert!(!cluster.is_live(&name("x")));
    // A late copy of its own heartbeat, or an older incarnation: refused.
    cluster.handle_input(now, from(5, 0, Body::Heartbeat { channels: 0 }));
    cluster.handle_input(now, from(3, 0, Body::Heartbeat { channels: 0 }));
    assert!(!cluster.is_live(&name("x")));
    assert_eq!(cluster.stats().stale_messages, 2);
    // A restart whose incarnation went backwards (a clock reset) is live
    // again once the goodbye is a ttl old; a newer one at once.
    let later = now + ClusterConfig::default().ttl;
    cluster.handle_input(later, from(3, 0, Body::Heartbeat { channels: 0 }));
    assert!(cluster.is_live(&name("x")));
    cluster.handle_input(later, from(9, 0, Body::Heartbeat { channels: 0 }));
    let outputs = drain(&mut cluster);
    assert!(outputs.contains(&Output::NodeDown {
        node: name("x"),
        why: tether_cluster::NodeDownReason::Restarted
    }));
    assert_eq!(
        cluster
            .nodes(later)
            .find(|n| n.name == name("x"))
            .unwrap()
            .incarnation,
        9
    );
}

#[test]
fn a_node_back_from_expiry_resumes_its_stream() {
    let (mut cluster, now) = machine();
    let line = |seq: u64| {
        let body = Body::Line {
            id: id(1),
            text: Bytes::from(format!("l{seq}")),
        };
        Input::Received(wire::encode(&message("x", seq, body)))
    };
    for seq in 0..5 {
        cluster.handle_input(now, line(seq));
    }
    let later = now + ClusterConfig::default().ttl;
    cluster.handle_input(later, Input::Timeout);
    assert!(!cluster.is_live(&name("x")));
    drain(&mut cluster);
    // Back in the same incarnation at 7: 5 and 6 were missed meanwhile.
    cluster.handle_input(later, line(7));
    // A late copy of 3 was applied before: a duplicate, never delivered
    // twice; 5 straggles in after 7: already counted lost, dropped.
    cluster.handle_input(later, line(3));
    cluster.handle_input(later, line(5));
    cluster.handle_input(later, line(8));
    let outputs = drain(&mut cluster);
    let delivered: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Deliver { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, [Bytes::from("l7"), Bytes::from("l8")]);
    assert!(outputs.contains(&Output::Lost {
        node: name("x"),
        messages: 2
    }));
    let stats = cluster.stats();
    assert_eq!((stats.duplicates, stats.messages_lost), (2, 2));
}
