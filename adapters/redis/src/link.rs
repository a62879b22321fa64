//! One connection to Redis and the few commands the driver sends on it.
//!
//! Every command has a deadline (the connection's read and write timeouts);
//! after any error the connection is dropped and a new one made, because a
//! timed-out reply could still arrive and be taken for the next command's.

use std::time::Duration;

use bytes::Bytes;
use redis::{Client, Connection, Value};

use crate::url::RedisUrl;

/// The stream every node writes its payloads to and reads everyone's from.
pub const BUS_KEY: &str = "tether:bus";

/// The field of a bus entry that holds the payload.
pub const PAYLOAD_FIELD: &str = "p";

/// Entries the bus keeps, about (`XADD … MAXLEN ~ N`): a reader that was
/// away resumes from its last id as long as the stream still holds it, and
/// what was trimmed before it came back is a gap the state machine counts.
pub const BUS_MAXLEN: u64 = 100_000;

/// The key that claims a node's name: `tether:node:<name>`.
pub fn claim_key(node: &str) -> String {
    format!("tether:node:{node}")
}

/// Renews the claim if it is still ours; takes it again if it expired (a
/// Redis restart or an outage longer than the TTL). 1: renewed; 2: taken
/// again; 0: another incarnation holds it.
const RENEW: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 \
    elseif not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 \
    else return 0 end";

/// Deletes the claim only if it is still ours.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";

/// What renewing the claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours; its TTL starts again.
    Renewed,
    /// It had expired (Redis restarted, or lost it); taken again.
    Retaken,
    /// Another process holds the name now.
    Lost,
}

/// One entry read from the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its stream id.
    pub id: StreamId,
    /// Its payload (`None`: the entry had no payload field).
    pub payload: Option<Bytes>,
}

/// A stream id, `<ms>-<seq>`, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// Parses `<ms>-<seq>`.
    pub fn parse(text: &[u8]) -> Option<StreamId> {
        let text = std::str::from_utf8(text).ok()?;
        let (ms, seq) = text.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A connection with its command deadline.
pub struct Link {
    con: Connection,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link(..)")
    }
}

impl Link {
    /// Connects within `timeout`; every later command's reply must come
    /// within `timeout` too (plus the block time of a blocking read).
    pub fn connect(url: &RedisUrl, timeout: Duration) -> redis::RedisResult<Link> {
        let client = Client::open(url.connection_info())?;
        let con = client.get_connection_with_timeout(timeout)?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        let mut link = Link { con };
        redis::cmd("PING").query::<()>(&mut link.con)?;
        Ok(link)
    }

    /// Sets how long a reply may take (a blocking read needs its block
    /// time on top).
    pub fn set_reply_timeout(&mut self, timeout: Duration) -> redis::RedisResult<()> {
        self.con.set_read_timeout(Some(timeout))
    }

    /// `SET tether:node:<name> <incarnation> NX PX <ttl>`: `true` if the
    /// name was free and is ours now.
    pub fn claim(
        &mut self,
        node: &str,
        incarnation: u64,
        ttl: Duration,
    ) -> redis::RedisResult<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(claim_key(node))
            .arg(incarnation)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query(&mut self.con)?;
        Ok(set.is_some())
    }

    /// Renews the claim if still ours (see [`Renewal`]).
    pub fn renew(
        &mut self,
        node: &str,
        incarnation: u64,
        ttl: Duration,
    ) -> redis::RedisResult<Renewal> {
        let answer: i64 = redis::cmd("EVAL")
            .arg(RENEW)
            .arg(1)
            .arg(claim_key(node))
            .arg(incarnation)
            .arg(millis(ttl))
            .query(&mut self.con)?;
        Ok(match answer {
            1 => Renewal::Renewed,
            2 => Renewal::Retaken,
            _ => Renewal::Lost,
        })
    }

    /// Deletes the claim if still ours; `true` if it was.
    pub fn release(&mut self, node: &str, incarnation: u64) -> redis::RedisResult<bool> {
        let answer: i64 = redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(claim_key(node))
            .arg(incarnation)
            .query(&mut self.con)?;
        Ok(answer == 1)
    }

    /// Appends payloads to the bus, in order, in one round trip
    /// (`XADD tether:bus MAXLEN ~ N * p <payload>` each, pipelined).
    pub fn publish(&mut self, payloads: &[Bytes]) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for payload in payloads {
            pipe.cmd("XADD")
                .arg(BUS_KEY)
                .arg("MAXLEN")
                .arg("~")
                .arg(BUS_MAXLEN)
                .arg("*")
                .arg(PAYLOAD_FIELD)
                .arg(payload.as_ref())
                .ignore();
        }
        pipe.query::<()>(&mut self.con)
    }

    /// The id of the bus's last entry (`None`: no stream yet).
    pub fn tail(&mut self) -> redis::RedisResult<Option<StreamId>> {
        let value: Value = redis::cmd("XREVRANGE")
            .arg(BUS_KEY)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query(&mut self.con)?;
        Ok(entries_of(&value).first().map(|entry| entry.id))
    }

    /// `XREAD COUNT <count> BLOCK <block> STREAMS tether:bus <after>`: the
    /// entries after `after`, waiting at most `block` for one; malformed
    /// entries are skipped (their count is the second value).
    pub fn read(
        &mut self,
        after: StreamId,
        count: usize,
        block: Duration,
    ) -> redis::RedisResult<(Vec<Entry>, usize)> {
        let value: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(millis(block).max(1))
            .arg("STREAMS")
            .arg(BUS_KEY)
            .arg(after.to_string())
            .query(&mut self.con)?;
        // XREAD's reply: nil on timeout, else [[key, [entry…]]] (a map of
        // key → entries under RESP3).
        let streams: Vec<&Value> = match &value {
            Value::Array(items) => items.iter().collect(),
            Value::Map(items) => items.iter().map(|(_, v)| v).collect(),
            _ => Vec::new(),
        };
        let mut entries = Vec::new();
        let mut bad = 0;
        for stream in streams {
            let list = match stream {
                Value::Array(pair) if pair.len() == 2 => &pair[1],
                other => other,
            };
            let parsed = entries_of(list);
            bad += count_items(list).saturating_sub(parsed.len());
            entries.extend(parsed);
        }
        Ok((entries, bad))
    }
}

fn count_items(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.len(),
        _ => 0,
    }
}

/// The well-formed entries of a list of `[id, [field, value, …]]`.
fn entries_of(value: &Value) -> Vec<Entry> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items.iter().filter_map(entry_of).collect()
}

fn entry_of(value: &Value) -> Option<Entry> {
    let Value::Array(pair) = value else {
        return None;
    };
    let [id, fields] = pair.as_slice() else {
        return None;
    };
    let id = StreamId::parse(bytes_of(id)?)?;
    let fields: Vec<&Value> = match fields {
        Value::Array(fields) => fields.iter().collect(),
        Value::Map(fields) => fields.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    };
    let payload = fields
        .chunks(2)
        .find(|kv| kv.len() == 2 && bytes_of(kv[0]) == Some(PAYLOAD_FIELD.as_bytes()))
        .and_then(|kv| bytes_of(kv[1]))
        .map(Bytes::copy_from_slice);
    Some(Entry { id, payload })
}

fn bytes_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// Whole milliseconds, at least 1 for a nonzero duration, saturating.
pub fn millis(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 && !d.is_zero() { 1 } else { ms }
}

/// Capped exponential backoff between reconnect attempts: 50 ms, doubling,
/// at most [`MAX_BACKOFF`] — so a node is back at most that long after
/// Redis is.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

/// The longest wait between two reconnect attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(50),
        }
    }
}

impl Backoff {
    /// The wait before the next attempt (and doubles it, up to the cap).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_parse_and_order() {
        let a = StreamId::parse(b"1700000000000-0").unwrap();
        let b = StreamId::parse(b"1700000000000-12").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1700000000000-12");
        for bad in [&b""[..], b"12", b"a-1", b"1-", b"-1", b"1-2-3"] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn entries_parse_and_skip_garbage() {
        let good = Value::Array(vec![
            Value::BulkString(b"5-1".to_vec()),
            Value::Array(vec![
                Value::BulkString(b"p".to_vec()),
                Value::BulkString(b"\x00payload".to_vec()),
            ]),
        ]);
        let no_payload = Value::Array(vec![
            Value::BulkString(b"5-2".to_vec()),
            Value::Array(vec![Value::BulkString(b"x".to_vec())]),
        ]);
        let list = Value::Array(vec![good, Value::Int(3), no_payload, Value::Nil]);
        let entries = entries_of(&list);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].payload.as_deref(), Some(&b"\x00payload"[..]));
        assert_eq!(entries[1].id, StreamId { ms: 5, seq: 2 });
        assert_eq!(entries[1].payload, None);
    }

    #[test]
    fn backoff_is_capped_at_one_second() {
        let mut backoff = Backoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next_wait()).collect();
        assert_eq!(waits[0], Duration::from_millis(50));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
    }
}
