//! A real browser against a real `tether serve`: headless Chromium (the
//! Debian package; `.ci/run` installs it) loads the chat page twice and
//! the admin dashboard once. Two pages chat with each other and with a
//! TCP client, the online list shows all three, a console kick shows its
//! reason in the kicked page (which does not reconnect), the dashboard
//! lists them and its kick button kicks the TCP client. The screenshots
//! land in the test's temporary directory, or in the directory named by
//! `TETHER_SCREENSHOTS` (`TETHER_SCREENSHOTS=docs/screenshots cargo test
//! -p tether-conformance --test browser` refreshes the README's), so a CI
//! run leaves the checkout as it found it.
//!
//! Without Chromium the test fails, saying to run `.ci/run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_conformance::browser::{Browser, Tab};
use tether_conformance::client::End;
use tether_conformance::pressure::net::Client;
use tether_conformance::pressure::{Admin, ServerSpec, serial};

/// A generous bound on anything the pages must show (a debug server on a
/// loaded CI machine; the pages poll every 2 s).
const SHOW: Duration = Duration::from_secs(20);

/// A JavaScript string literal.
fn js(text: &str) -> String {
    json!(text).to_string()
}

/// Whether the chat page's message list has `text` from `who`.
fn has_message(who: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages li')].some(li => \
         li.querySelector('.who')?.textContent === {} && li.lastChild.textContent === {})",
        js(who),
        js(text)
    )
}

/// What the chat page shows, for failure messages.
const CHAT_STATE: &str = "({ state: document.body.dataset.state, me: document.getElementById('me').textContent, \
     banner: document.getElementById('banner').textContent, \
     messages: [...document.querySelectorAll('#messages li')].map(li => li.textContent), \
     online: [...document.querySelectorAll('#online li')].map(li => li.textContent) })";

/// Types `text` into the chat page and sends it.
fn say(browser: &mut Browser, tab: &Tab, text: &str) {
    browser.eval(
        tab,
        &format!(
            "(() => {{ document.getElementById('text').value = {}; \
             document.getElementById('send').requestSubmit(); return true; }})()",
            js(text)
        ),
    );
}

/// The page's id, once it is greeted.
fn page_id(browser: &mut Browser, tab: &Tab) -> String {
    browser.wait_for(
        tab,
        "the page is greeted",
        "document.body.dataset.state === 'open' && document.getElementById('me').textContent.startsWith('#')",
        CHAT_STATE,
        SHOW,
    );
    let id = browser.eval(tab, "document.getElementById('me').textContent");
    id.as_str().expect("an id").to_owned()
}

/// Reads TCP lines until `want` (other lines — greetings, other chat —
/// are skipped).
fn tcp_reads(client: &mut Client, want: &str) {
    let deadline = Instant::now() + SHOW;
    let mut seen = Vec::new();
    loop {
        match client.reader.next_line(deadline) {
            Ok(line) if line == want.as_bytes() => return,
            Ok(line) => seen.push(String::from_utf8_lossy(line).into_owned()),
            Err(end) => panic!("the TCP client never read {want:?} ({end:?}); it read {seen:?}"),
        }
    }
}

fn screenshots() -> PathBuf {
    let dir = match std::env::var_os("TETHER_SCREENSHOTS") {
        // Relative to the workspace root, where the README is.
        Some(dir) => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(dir),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
    };
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

fn save(browser: &mut Browser, tab: &Tab, name: &str) {
    let png = browser.screenshot(tab);
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
    std::fs::write(screenshots().join(name), png).expect("write the screenshot");
}

/// Whether the page's online list shows every one of `ids`.
fn online(ids: &[&str]) -> String {
    format!(
        "(() => {{ const shown = [...document.querySelectorAll('#online li')].map(li => li.textContent); \
         return {}.every(id => shown.includes(id)); }})()",
        json!(ids)
    )
}

/// Two chat pages and a TCP client, with their ids.
struct Chat {
    a: Tab,
    b: Tab,
    id_a: String,
    id_b: String,
    tcp: Client,
    id_tcp: String,
}

/// Two pages and a TCP client chat with each other, and each page lists
/// all three as online.
fn chat(browser: &mut Browser, web: SocketAddr, chat_addr: SocketAddr) -> Chat {
    let a = browser.open(&format!("http://{web}/"));
    let b = browser.open(&format!("http://{web}/"));
    let id_a = page_id(browser, &a);
    let id_b = page_id(browser, &b);
    assert_ne!(id_a, id_b);
    let mut tcp = Client::connect(chat_addr, Instant::now() + SHOW).expect("a TCP client");
    let id_tcp = tcp.id.clone();

    say(browser, &a, "hello from a browser");
    browser.wait_for(
        &b,
        "B reads A",
        &has_message(&id_a, "hello from a browser"),
        CHAT_STATE,
        SHOW,
    );
    browser.wait_for(
        &a,
        "A reads itself",
        &has_message(&id_a, "hello from a browser"),
        CHAT_STATE,
        SHOW,
    );
    tcp_reads(&mut tcp, &format!("{id_a}: hello from a browser"));

    let mut writer = tcp.writer();
    std::io::Write::write_all(&mut writer, "hi from TCP — ünïcode too\n".as_bytes())
        .expect("TCP write");
    for tab in [&a, &b] {
        browser.wait_for(
            tab,
            "a page reads TCP",
            &has_message(&id_tcp, "hi from TCP — ünïcode too"),
            CHAT_STATE,
            SHOW,
        );
    }
    say(browser, &b, "and hello back");
    browser.wait_for(
        &a,
        "A reads B",
        &has_message(&id_b, "and hello back"),
        CHAT_STATE,
        SHOW,
    );
    tcp_reads(&mut tcp, &format!("{id_b}: and hello back"));

    let everyone = online(&[&id_a, &id_b, &id_tcp]);
    browser.wait_for(&a, "A lists who is online", &everyone, CHAT_STATE, SHOW);
    browser.wait_for(&b, "B lists who is online", &everyone, CHAT_STATE, SHOW);
    Chat {
        a,
        b,
        id_a,
        id_b,
        tcp,
        id_tcp,
    }
}

/// What the dashboard's table shows, for failure messages.
const TABLE: &str = "({ live: document.getElementById('live').textContent, \
     rows: [...document.querySelectorAll('#channels tr')].map(tr => tr.dataset.id) })";

/// The dashboard (on the --metrics listener) lists all three.
fn dashboard_lists(browser: &mut Browser, metrics: SocketAddr, chat: &Chat) -> Tab {
    let dashboard = browser.open(&format!("http://{metrics}/"));
    let listed = format!(
        "document.body.dataset.loaded === 'true' && {}.every(id => document.querySelector(`tr[data-id=\"${{id}}\"]`))",
        json!([chat.id_a, chat.id_b, chat.id_tcp])
    );
    browser.wait_for(
        &dashboard,
        "the dashboard lists the three",
        &listed,
        TABLE,
        SHOW,
    );

    dashboard
}

/// A console kick: the kicked page shows the reason and stays closed.
fn console_kick(browser: &mut Browser, admin: &mut Admin, chat: &Chat) {
    let (b, id_b) = (&chat.b, &chat.id_b);
    let said = admin
        .command(&format!("kick {id_b} graceful spamming the room"), SHOW)
        .expect("kick");
    assert_eq!(said, ["ok"], "the console's answer to the kick");
    browser.wait_for(
        b,
        "the kicked page shows why",
        "(() => { const b = document.getElementById('banner'); return b.classList.contains('show') \
         && b.textContent.includes('kicked: spamming the room') && b.dataset.code === '4001' \
         && b.dataset.reconnect === 'false'; })()",
        CHAT_STATE,
        SHOW,
    );
    // The kick's code says not to come back: no reconnect, even later.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        browser.eval(b, "document.body.dataset.state"),
        json!("closed"),
        "the kicked page reconnected: {}",
        browser.eval(b, CHAT_STATE)
    );
    save(browser, b, "kicked.png");
}

/// The dashboard's kick button (POST /api/kick) kicks the TCP client;
/// page A, still connected, lists only itself.
fn dashboard_kick(browser: &mut Browser, dashboard: &Tab, chat: &mut Chat) {
    let (id_b, id_tcp) = (&chat.id_b, &chat.id_tcp);
    browser.wait_for(
        dashboard,
        "B is gone from the table",
        &format!("!document.querySelector('tr[data-id=\"{id_b}\"]')"),
        TABLE,
        SHOW,
    );
    browser.eval(
        dashboard,
        &format!("document.querySelector('tr[data-id=\"{id_tcp}\"] button').click(), true"),
    );
    browser.wait_for(
        dashboard,
        "the dashboard's kick is answered ok",
        &format!(
            "document.getElementById('kickResult').textContent === {}",
            js(&format!("{id_tcp}: ok"))
        ),
        "document.getElementById('kickResult').textContent",
        SHOW,
    );
    tcp_reads(&mut chat.tcp, "* kicked: kicked from the dashboard");
    let end = chat
        .tcp
        .reader
        .next_line(Instant::now() + SHOW)
        .map(<[u8]>::to_vec);
    assert_eq!(end, Err(End::Eof), "the kicked TCP client reads EOF");

    // A few samples on the charts, then the dashboard's picture.
    std::thread::sleep(Duration::from_secs(5));
    save(browser, dashboard, "dashboard.png");
    // Page A is still connected, and lists only who is left.
    let left = online(&[&chat.id_a]);
    browser.wait_for(
        &chat.a,
        "A lists who is left",
        &format!("{left} && document.querySelectorAll('#online li').length === 1"),
        CHAT_STATE,
        SHOW,
    );
}

/// A shutdown (1001) advises a reconnect: the page says so, tries again
/// after its backoff (the server is gone: 1006), and keeps trying.
fn shutdown_reconnects(browser: &mut Browser, admin: &mut Admin, a: &Tab) {
    let said = admin.command("shutdown 1s", SHOW).expect("shutdown");
    assert_eq!(said, ["ok"], "the console's answer to shutdown");
    browser.wait_for(
        a,
        "the page is told the server shuts down, and may come back",
        "(() => { const b = document.getElementById('banner'); \
         return b.textContent.includes('server shutting down') && b.dataset.code === '1001' \
         && b.dataset.reconnect === 'true' && b.textContent.includes('retrying in'); })()",
        CHAT_STATE,
        SHOW,
    );
    browser.wait_for(
        a,
        "the page reconnects after its backoff (and finds the server gone)",
        "(() => { const b = document.getElementById('banner'); \
         return b.dataset.code === '1006' && b.dataset.reconnect === 'true'; })()",
        CHAT_STATE,
        SHOW,
    );
}

#[test]
fn two_pages_and_a_tcp_client_chat_a_kick_shows_and_the_dashboard_lists_them() {
    let _serial = serial();
    let server = ServerSpec::new("tokio:2", "browser")
        .flag("--metrics", "127.0.0.1:0")
        .start();
    let web = server.web_addr(SHOW).expect("the --web address");
    let metrics = server.metrics_addr(SHOW).expect("the --metrics address");
    let mut browser = Browser::launch(&std::env::temp_dir());
    let mut chat = chat(&mut browser, web, server.chat);
    save(&mut browser, &chat.a, "chat.png");
    let dashboard = dashboard_lists(&mut browser, metrics, &chat);
    let mut admin = server.admin(SHOW).expect("the admin console");
    console_kick(&mut browser, &mut admin, &chat);
    dashboard_kick(&mut browser, &dashboard, &mut chat);
    shutdown_reconnects(&mut browser, &mut admin, &chat.a);
}
