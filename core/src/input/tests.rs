//! Every input's name, arguments and signature agree.

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Arg, Input};
use crate::{ChannelId, Config, DisconnectReason, Hub, KickMode, Outcome, Rejection};

/// One input of each kind.
fn samples() -> Vec<Input> {
    let id = ChannelId::from_parts(0, 1, 1).unwrap();
    let other = ChannelId::from_parts(1, 2, 3).unwrap();
    let data = Bytes::from_static(b"hi");
    vec![
        Input::Accept {
            peer: "127.0.0.1:4000".parse().unwrap(),
        },
        Input::Received {
            id,
            data: data.clone(),
        },
        Input::PeerEof { id },
        Input::IoError {
            id,
            kind: io::ErrorKind::TimedOut,
        },
        Input::Written { id, n: 3 },
        Input::Send {
            id,
            data: data.clone(),
        },
        Input::Broadcast { data: data.clone() },
        Input::Kick {
            id,
            mode: KickMode::Abort,
            code: 7,
        },
        Input::KickDefault { id },
        Input::Authenticate { id },
        Input::Attach { id },
        Input::Detach { id },
        Input::Closed { id },
        Input::Timeout,
        Input::Shutdown {
            grace: Duration::from_millis(1_500),
        },
        Input::KickWithReason {
            id,
            mode: KickMode::Graceful,
            reason: DisconnectReason::SlowConsumer,
        },
        Input::BroadcastTo {
            ids: vec![id, other, id],
            data,
        },
    ]
}

#[test]
fn every_input_round_trips_through_its_name_and_args() {
    let samples = samples();
    let mut names: Vec<&str> = samples.iter().map(Input::name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), samples.len(), "one name per input");
    for input in samples {
        let args = input.args();
        let kinds: Vec<_> = args.iter().map(Arg::kind).collect();
        assert_eq!(
            Input::signature(input.name()),
            Some(&kinds[..]),
            "{input:?}"
        );
        assert_eq!(
            Input::from_args(input.name(), args.clone()),
            Some(input.clone())
        );
        // Not another input's arguments, nor one too many.
        assert_eq!(Input::from_args("no-such-input", args.clone()), None);
        let mut more = args;
        more.push(Arg::Code(1));
        assert_eq!(Input::from_args(input.name(), more), None, "{input:?}");
        let ids: Vec<_> = (input.args().into_iter())
            .flat_map(|arg| match arg {
                Arg::Id(id) => vec![id],
                Arg::Ids(ids) => ids,
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(input.channels(), &ids[..], "{input:?}");
    }
}

#[test]
fn handle_input_answers_what_the_typed_method_returns() {
    let (mut hub, mut typed) = (
        Hub::new(Config::default()).unwrap(),
        Hub::new(Config::default()).unwrap(),
    );
    let now = Instant::now();
    let peer = "127.0.0.1:4000".parse().unwrap();
    let id = typed.accept(now, peer).unwrap();
    let answer = hub.handle_input(now, Input::Accept { peer });
    assert_eq!(answer.outcome(), Outcome::Opened(id));
    let stale = ChannelId::from_parts(0, 0, 9).unwrap();
    let input = Input::BroadcastTo {
        ids: vec![id, stale],
        data: Bytes::from_static(b"x"),
    };
    let report = typed.broadcast_to(now, [id, stale], Bytes::from_static(b"x"));
    assert_eq!(
        hub.handle_input(now, input),
        super::Answer::Broadcast(report)
    );
    let kick = Input::KickWithReason {
        id,
        mode: KickMode::Abort,
        reason: DisconnectReason::LoginTimeout,
    };
    assert_eq!(hub.handle_input(now, kick.clone()).outcome(), Outcome::Ok);
    let again = hub.handle_input(now, kick).outcome();
    assert_eq!(again, Outcome::Rejected(Rejection::AlreadyClosing));
}
