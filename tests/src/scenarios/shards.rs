//! Shards fed by one `SO_REUSEPORT` listener each (`Accept::ReusePort`):
//! for adapters started with two shards in that mode.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use tether_adapter::Options;
use tether_core::{ChannelId, Config};

use super::SOON;
use crate::client::{self, End};
use crate::rig::{Adapter, Rig, ServerUnderTest};

const REFUSE_LINE: &[u8] = b"error server full\n";

/// Options with a greeting (`hello <id>`) and a refusal line, so that a
/// client learns at once whether it was served or refused.
fn greeting_options() -> Options {
    Options::default()
        .with_refuse_line(Bytes::from_static(REFUSE_LINE))
        .with_greeting(|id: ChannelId| Bytes::from(format!("hello {id}\n")))
}

/// What a new client reads first: its greeting (served) or the refusal
/// line and EOF (refused by a full shard).
enum First {
    Served(TcpStream),
    Refused,
}

fn first_line(mut stream: TcpStream) -> First {
    stream
        .set_read_timeout(Some(SOON))
        .expect("set a read timeout");
    let mut first = [0u8; 6];
    stream.read_exact(&mut first).expect("greeting or refusal");
    if &first == b"hello " {
        return First::Served(stream);
    }
    let (rest, end) = client::read_to_end(&mut stream, SOON);
    let mut line = first.to_vec();
    line.extend_from_slice(&rest);
    assert_eq!(line, REFUSE_LINE, "neither a greeting nor the refusal line");
    assert_eq!(end, End::Eof, "a refused client is closed");
    First::Refused
}

/// Two shards, each with its own `SO_REUSEPORT` listener on one port:
///
/// 1. the kernel spreads connections over both shards (ids carry their
///    shard);
/// 2. a shard at its limit refuses what is hashed to it with the refusal
///    line, **even while the other shard has room** (the kernel cannot skip
///    a full shard), and the server stays healthy: the served client still
///    gets its bytes, and a later client is served by the shard with room;
/// 3. shutdown closes every shard's listener: nothing accepts on the port
///    afterwards.
pub fn reuse_port_spreads_and_refuses<A: Adapter>() {
    // 1. Spreading: 32 clients all hashed to one shard would be a 2^-31
    // chance.
    let rig = Rig::<A>::start_with(Config::default(), greeting_options());
    let clients: Vec<(TcpStream, ChannelId)> = (0..32).map(|_| rig.connect()).collect();
    let on_0 = clients.iter().filter(|(_, id)| id.shard() == 0).count();
    let on_1 = clients.iter().filter(|(_, id)| id.shard() == 1).count();
    assert_eq!(on_0 + on_1, 32, "{}: ids of shards 0 and 1 only", A::NAME);
    assert!(
        on_0 > 0 && on_1 > 0,
        "{}: every connection on one shard ({on_0} on 0, {on_1} on 1)",
        A::NAME
    );
    drop(clients);
    rig.drained(SOON);
    rig.finish();

    // 2. One channel per shard. Each attempt starts with both shards empty:
    // the first client fills one; the second is either hashed to the same,
    // full shard (refused while the other is empty: what this checks) or
    // served by the other; then both leave and the attempt is repeated.
    let rig = Rig::<A>::start_with(Config::default().with_max_channels(2), greeting_options());
    let addr = rig.addr();
    let mut refused_while_room = None;
    for _ in 0..40 {
        let (mut first, first_id) = rig.connect();
        let _ = client::read_exact(&mut first, format!("hello {first_id}\n").len(), SOON)
            .expect("greeting");
        let second = client::connect(addr);
        match first_line(second) {
            First::Refused => {
                refused_while_room = Some((first, first_id));
                break;
            }
            First::Served(second) => {
                let second_id = rig.opened_id(&second, SOON).expect("opened");
                assert_ne!(
                    second_id.shard(),
                    first_id.shard(),
                    "{}: a full shard served a second channel",
                    A::NAME
                );
                drop((first, second));
                rig.released(first_id);
                rig.released(second_id);
            }
        }
    }
    let (mut first, first_id) = refused_while_room.unwrap_or_else(|| {
        panic!(
            "{}: 40 second clients, none hashed to the full shard",
            A::NAME
        )
    });
    assert!(
        rig.server().refused() >= 1,
        "{}: the refusal is counted",
        A::NAME
    );
    // Healthy: the served client still gets its bytes…
    rig.server()
        .send(first_id, Bytes::from_static(b"still here\n"))
        .expect("send to the served client");
    let got = client::read_exact(&mut first, b"still here\n".len(), SOON).expect("read");
    assert_eq!(got, b"still here\n", "{}", A::NAME);
    // …and the shard with room serves a client hashed to it.
    let mut late = None;
    for _ in 0..40 {
        let stream = client::connect(addr);
        if let First::Served(stream) = first_line(stream) {
            let id = rig.opened_id(&stream, SOON).expect("opened");
            assert_ne!(id.shard(), first_id.shard(), "{}", A::NAME);
            late = Some(stream);
            break;
        }
    }
    assert!(
        late.is_some(),
        "{}: 40 clients in a row refused while a shard had room",
        A::NAME
    );
    drop((first, late));

    // 3. Every listener closes at shutdown.
    rig.finish();
    for _ in 0..20 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(_) => {}
            Ok(mut stream) => {
                let (data, end) = client::read_to_end(&mut stream, Duration::from_millis(500));
                panic!(
                    "{}: something still accepts on {addr} after shutdown ({data:?}, {end:?})",
                    A::NAME
                );
            }
        }
    }
}
