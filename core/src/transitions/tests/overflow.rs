//! Issue 16: a charge check that overflowed. With `queue_limit` and the high
//! watermark at `usize::MAX`, the low at 0 and `message_overhead` at
//! `usize::MAX - 1`, a 1-byte send is charged `usize::MAX`, and the next
//! one's check added `usize::MAX` to it: a panic in debug, a wrap that
//! admitted the send in release (invariants 8, 10).

use std::time::Instant;

use bytes::Bytes;

use super::peer;
use crate::channel::Channel;
use crate::transitions::{Books, send};
use crate::{Action, Config, ConfigError, Event, Hub, SendError};

/// The issue's configuration, with the queue limit given.
fn edge(limit: usize) -> Config {
    Config {
        queue_limit: limit,
        high_watermark: limit,
        low_watermark: 0,
        message_overhead: limit - 1,
        ..Config::default()
    }
}

#[test]
fn the_issues_config_is_refused_and_its_sends_never_overflow() {
    let config = edge(usize::MAX);
    assert!(matches!(
        config.validate(),
        Err(ConfigError::QueueLimitTooLarge { .. })
    ));
    // The transition itself, given the config `validate` refuses: the
    // second send's charge cannot be represented, so it is refused, never
    // wrapped to a small charge and admitted.
    let (now, id) = (
        Instant::now(),
        crate::ChannelId::from_parts(0, 0, 1).unwrap(),
    );
    let mut ch = Channel::new(peer(), now);
    let mut b = Books {
        usable: 1,
        ..Books::default()
    };
    let one = Bytes::from_static(b"x");
    send(&mut ch, id, &one, &mut b, &config, now).unwrap();
    assert_eq!((ch.queued, ch.charged), (1, usize::MAX));
    let err = send(&mut ch, id, &one, &mut b, &config, now).unwrap_err();
    assert!(
        matches!(err, SendError::QueueFull { kicked: false, .. }),
        "{err:?}"
    );
    assert_eq!((ch.queued, ch.charged), (1, usize::MAX));
    assert_eq!(b.stats.sends_rejected, 1);
}

#[test]
fn the_largest_valid_queue_limit_rejects_what_does_not_fit() {
    let config = edge(Config::MAX_QUEUE_LIMIT);
    let mut hub = Hub::new(config).unwrap();
    let now = Instant::now();
    let id = hub.accept(now, peer()).unwrap();
    let one = Bytes::from_static(b"x");
    hub.send(now, id, one.clone()).unwrap();
    let info = hub.channel(id).unwrap();
    assert_eq!((info.queued, info.charged), (1, Config::MAX_QUEUE_LIMIT));
    assert!(info.backpressured, "the charge is at the high watermark");
    // Charge + cost is 2 × MAX_QUEUE_LIMIT = usize::MAX - 1: representable,
    // and over the limit.
    let err = hub.send(now, id, one.clone()).unwrap_err();
    assert!(matches!(err, SendError::QueueFull { .. }), "{err:?}");
    let report = hub.broadcast(now, one);
    assert_eq!((report.sent, report.refused.len()), (0, 1));
    // Written, the queue drains and takes a message again.
    hub.handle_written(now, id, 1).unwrap();
    assert_eq!(hub.channel(id).unwrap().charged, 0);
    let (actions, events): (Vec<_>, Vec<_>) = (
        std::iter::from_fn(|| hub.poll_action()).collect(),
        std::iter::from_fn(|| hub.poll_event()).collect(),
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::Transmit { .. }))
            .count(),
        1
    );
    assert!(events.contains(&Event::Writable { id }));
    hub.send(now, id, Bytes::from_static(b"y")).unwrap();
}

#[test]
fn a_deadline_past_the_end_of_time_is_the_last_second_not_now() {
    use std::time::Duration;

    use crate::transitions::after_or_far;
    // The last whole second after `now` that `Instant` holds, found the
    // slow way.
    let now = Instant::now();
    let mut end = now;
    let mut step = Duration::from_secs(1 << 62);
    while step >= Duration::from_secs(1) {
        if let Some(t) = end.checked_add(step) {
            end = t;
        } else {
            step /= 2;
        }
    }
    let hour = Duration::from_secs(3_600);
    let t = end - hour;
    // Neither `t + d` nor `t + 136 years` fits: the end, never `t` itself
    // (a graceful close would otherwise escalate at once).
    assert_eq!(after_or_far(t, Duration::MAX), end);
    assert_eq!(after_or_far(end, Duration::MAX), end);
    assert_eq!(after_or_far(t, hour), end);
    assert_eq!(after_or_far(now, hour), now + hour);
    let far = Duration::from_secs(u64::from(u32::MAX));
    assert_eq!(after_or_far(now, Duration::MAX), now + far);
}
