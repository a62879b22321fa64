//! The chat server and admin console end to end, as `nc` users see them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use tether_async_std::{AsyncStd, Smol, chat};
use tether_chat::Cli;
use tether_chat::Command;

fn options() -> tether_chat::ServeOptions {
    let cli = Cli::parse(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]).unwrap();
    match cli.command {
        Command::Serve(options) => options,
        other => panic!("expected serve, got {other:?}"),
    }
}

struct Line(BufReader<TcpStream>);

impl Line {
    fn connect(addr: std::net::SocketAddr) -> (TcpStream, Line) {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, Line(reader))
    }
    fn next(&mut self) -> String {
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        line
    }
    /// Lines up to and including the terminating `.`.
    fn block(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.next();
            assert!(!line.is_empty(), "EOF inside a block: {lines:?}");
            if line == ".\n" {
                return lines;
            }
            lines.push(line);
        }
    }
}

fn chat_and_kick(server: chat::ChatServer) {
    let (mut alice, mut alice_in) = Line::connect(server.chat_addr);
    let (_bob, mut bob_in) = Line::connect(server.chat_addr);
    let alice_id = alice_in
        .next()
        .strip_prefix("hello ")
        .unwrap()
        .trim()
        .to_owned();
    let bob_id = bob_in
        .next()
        .strip_prefix("hello ")
        .unwrap()
        .trim()
        .to_owned();
    alice.write_all(b"hi bob\r\n").unwrap();
    assert_eq!(bob_in.next(), format!("{alice_id}: hi bob\n"));
    assert_eq!(alice_in.next(), format!("{alice_id}: hi bob\n"));

    let (mut admin, mut answers) = Line::connect(server.admin_addr);
    admin.write_all(b"list\n").unwrap();
    let list = answers.block();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list.iter()
            .any(|l| l.starts_with(&format!("{alice_id} 127.0.0.1:")) && l.contains(" open "))
    );
    for bad in [
        "frobnicate\n",
        "kick\n",
        "kick nope\n",
        "kick #999.1\n",
        "stats please\n",
        "\n",
    ] {
        admin.write_all(bad.as_bytes()).unwrap();
        assert!(answers.next().starts_with("error "), "{bad:?}");
    }
    admin
        .write_all(format!("kick {alice_id} graceful too chatty\n").as_bytes())
        .unwrap();
    assert_eq!(answers.next(), "ok\n");
    assert_eq!(alice_in.next(), "* kicked: too chatty\n");
    assert_eq!(alice_in.next(), "", "EOF after the notice");
    admin
        .write_all(format!("kick {alice_id}\n").as_bytes())
        .unwrap();
    assert!(
        answers.next().starts_with("error "),
        "second kick of the same id"
    );
    drop(alice);
    admin.write_all(b"stats\n").unwrap();
    let stats = answers.block();
    assert!(
        stats.contains(&"disconnected.kicked=1\n".to_owned()),
        "{stats:?}"
    );
    assert!(stats.contains(&"opened=2\n".to_owned()), "{stats:?}");
    // `kick #999.1` is one rejected call: its notice is not sent after the
    // id was found stale.
    assert!(stats.contains(&"stale_calls=1\n".to_owned()), "{stats:?}");
    admin
        .write_all(format!("kick {bob_id} abort\n").as_bytes())
        .unwrap();
    assert_eq!(answers.next(), "ok\n");
    admin.write_all(b"shutdown 200\n").unwrap();
    assert_eq!(answers.next(), "ok\n");
    assert!(
        server
            .handle
            .blocking()
            .wait_stopped(Duration::from_secs(5)),
        "server stopped"
    );
}

#[test]
fn nc_users_chat_and_get_kicked_on_async_std() {
    chat_and_kick(chat::start(AsyncStd, &options(), false).unwrap());
}

#[test]
fn nc_users_chat_and_get_kicked_on_smol() {
    chat_and_kick(chat::start(Smol, &options(), false).unwrap());
}
