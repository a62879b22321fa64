//! The sans-IO `Hub` in a plain tokio app, no tether adapter: echo a line, kick from a task.
use std::{collections::HashMap, io::Write, time::Duration, time::Instant};
use tether_core::{Action, ChannelId, Config, Event, Hub, KickMode};
use tokio::{io::AsyncReadExt, io::AsyncWriteExt, sync::mpsc::channel, time::sleep};
/// Serves one client, kicks it, returns (`pub`: tests/examples.rs runs it).
#[tokio::main] // one task owns the hub, feeds it what tokio reports, executes its actions
pub async fn main() -> std::io::Result<()> {
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut client = std::net::TcpStream::connect(server.local_addr()?)?; // a plain client
    client.write_all(b"hello\n")?; // it waits in the backlog until accepted
    let client = std::thread::spawn(move || std::io::read_to_string(client)); // up to EOF
    let ((tx, mut rx), (kick, mut kicks)) = (channel(64), channel::<ChannelId>(1)); // bytes; ids
    let (mut hub, mut socks) = (Hub::new(Config::default()).unwrap(), HashMap::new());
    let next = |h: &mut Hub| h.poll_action().map(Ok).or_else(|| h.poll_event().map(Err));
    'serve: loop {
        tokio::select! {
            Ok((tcp, peer)) = server.accept() => if let Ok(id) = hub.accept(Instant::now(), peer) {
                let ((mut read, write), tx, mut buf) = (tcp.into_split(), tx.clone(), [0; 4096]);
                socks.insert(id, write);
                hub.attach(Instant::now(), id).unwrap(); // its reader task is a holder
                tokio::spawn(async move {
                    while let Ok(n @ 1..) = read.read(&mut buf).await {
                        tx.send((id, Some(buf[..n].to_vec()))).await.ok();
                    }
                    drop(read); // let go of the socket, then detach (None: done)
                    tx.send((id, None)).await
                });
            },
            Some((id, data)) = rx.recv() => match (data, Instant::now()) {
                (Some(data), now) => _ = hub.handle_received(now, id, data.into()),
                (None, now) => _ = (hub.handle_peer_eof(now, id), hub.detach(now, id)),
            },
            Some(id) = kicks.recv() => drop(hub.kick(Instant::now(), id, KickMode::Graceful, 1)),
            () = sleep(hub.poll_timeout().map_or(Duration::MAX, |at| at - Instant::now())) => {}
        }
        let now = Instant::now();
        hub.handle_timeout(now); // then every action (Ok) and event (Err) until quiet:
        while let Some(out) = next(&mut hub) {
            match out {
                Ok(Action::Transmit { id, data }) => {
                    socks.get_mut(&id).unwrap().write_all(&data).await?; // waits: fine here
                    _ = hub.handle_written(now, id, data.len());
                }
                Ok(Action::Shutdown { id, .. }) => _ = socks.get_mut(&id).unwrap().shutdown().await,
                Ok(Action::CloseSocket { id }) => {
                    drop(socks.remove(&id)); // close, then confirm
                    _ = hub.handle_closed(now, id);
                }
                Err(Event::Received { id, data }) => {
                    _ = hub.send(now, id, [&b"echo: "[..], &data].concat().into());
                    let kick = kick.clone(); // another task decides, and kicks
                    tokio::spawn(async move { kick.send(id).await });
                }
                Err(Event::Released { .. }) => break 'serve,
                _ => {} // Abort and Pause/ResumeAccept do not happen here
            }
        }
    }
    assert_eq!(client.join().unwrap()?, "echo: hello\n");
    Ok(())
}
