//! The churn cycle of `wsload` against the bare echo server, both as built:
//! every cycle completes (upgrade, greeting, own reply, close handshake),
//! and a request that is no upgrade costs the server nothing but that
//! connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `ws-echo 127.0.0.1:0 THREADS`, killed on drop.
struct Echo(Child, u16);

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn echo(threads: &str) -> Echo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ws-echo"))
        .args(["127.0.0.1:0", threads])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start ws-echo");
    let mut line = String::new();
    let out = child.stdout.take().expect("stdout");
    BufReader::new(out)
        .read_line(&mut line)
        .expect("its address");
    // "bare tungstenite echo on 127.0.0.1:PORT, N thread(s)"
    let port = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Echo(child, port)
}

/// `wsload churn` for a moment: its `key=value` fields.
fn churn(port: u16, threads: &str) -> Vec<(String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_wsload"))
        .args(["churn", &port.to_string(), "0.3", threads])
        .output()
        .expect("run wsload");
    assert!(out.status.success(), "wsload churn: {:?}", out);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn field(fields: &[(String, String)], key: &str) -> f64 {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
}

#[test]
fn every_churn_cycle_completes_against_the_bare_echo() {
    for threads in ["1", "2"] {
        let server = echo(threads);
        let fields = churn(server.1, "3");
        assert!(field(&fields, "ok") > 0.0, "{fields:?}");
        for key in ["e_conn", "e_upgrade", "e_greet", "e_reply", "foreign_lines"] {
            assert_eq!(
                field(&fields, key),
                0.0,
                "{key} with {threads} thread(s): {fields:?}"
            );
        }
    }
}

#[test]
fn a_request_that_is_no_upgrade_closes_only_its_connection() {
    let server = echo("1");
    let mut s = TcpStream::connect(("127.0.0.1", server.1)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut answer = Vec::new();
    // The server answers (tungstenite's error response) or just closes: EOF either way.
    let _ = s.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let fields = churn(server.1, "1");
    assert!(
        field(&fields, "ok") > 0.0 && field(&fields, "e_upgrade") == 0.0,
        "{fields:?}"
    );
}
