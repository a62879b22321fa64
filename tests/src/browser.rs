//! A real browser for the tests: headless Chromium (the Debian package),
//! driven over the Chrome DevTools Protocol with a blocking WebSocket
//! client (tungstenite, already in the tree through the layer).
//!
//! [`Browser::launch`] starts `chromium` with a fresh profile and a
//! DevTools port; [`Browser::open`] makes a [`Tab`], in which the browser
//! evaluates JavaScript ([`Browser::eval`], [`Browser::wait_for`]) and
//! takes PNG screenshots ([`Browser::screenshot`]). Every call has a deadline: a browser that stops answering
//! fails the test naming the step, never hangs it. Chromium missing is a
//! failure that says to run `.ci/run`, never a silent pass.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// How long one DevTools call may take.
const CALL: Duration = Duration::from_secs(30);

/// The flags of a quiet, reproducible headless Chromium: no sandbox (CI
/// runs as root), nothing fetched in the background, timers of hidden
/// tabs not throttled (two chat tabs are open at once).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--hide-scrollbars",
    "--window-size=1100,700",
    "--remote-debugging-port=0",
];

/// The Chromium binary: `$CHROMIUM`, else the first of `chromium` and
/// `chromium-browser` in `/usr/bin`.
///
/// # Panics
/// When there is none: run `.ci/run`, which installs it.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no Chromium at /usr/bin/chromium (nor $CHROMIUM): the browser test needs it; \
                 run .ci/run, which installs it (apt-get install -y chromium)"
            )
        })
}

/// A headless Chromium and its DevTools connection. Killed on drop.
pub struct Browser {
    child: Child,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    profile: PathBuf,
}

/// One tab of a [`Browser`] (a DevTools session).
#[derive(Debug, Clone)]
pub struct Tab {
    session: String,
    /// What it was opened on.
    pub url: String,
}

impl Browser {
    /// Starts Chromium with a fresh profile under `scratch` and connects to
    /// its DevTools endpoint.
    ///
    /// # Panics
    /// When Chromium is missing, does not start, or its endpoint does not
    /// answer within 30 s.
    pub fn launch(scratch: &Path) -> Browser {
        let binary = chromium();
        let profile = scratch.join(format!("chromium-profile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("create the Chromium profile directory");
        let mut child = Command::new(&binary)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {}: {e} (run .ci/run to install Chromium)",
                    binary.display()
                )
            });
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Until the endpoint line, then drain (Chromium logs a lot),
            // so a full pipe never blocks it.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(CALL) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{} printed no DevTools endpoint within {CALL:?}",
                    binary.display()
                );
            }
        };
        let (socket, _) = tungstenite::connect(url.as_str())
            .unwrap_or_else(|e| panic!("connect to Chromium's DevTools at {url}: {e}"));
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .expect("DevTools read timeout");
        }
        Browser {
            child,
            socket,
            next_id: 1,
            profile,
        }
    }

    /// One DevTools call (`session`: a tab's, or `None` for the browser's),
    /// its `result`.
    ///
    /// # Panics
    /// On an error answer, a closed connection or no answer within 30 s.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            request["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(request.to_string()))
            .unwrap_or_else(|e| panic!("DevTools {method}: send: {e}"));
        let deadline = Instant::now() + CALL;
        loop {
            assert!(
                Instant::now() < deadline,
                "DevTools {method}: no answer within {CALL:?}"
            );
            let message = match self.socket.read() {
                Ok(message) => message,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => panic!("DevTools {method}: read: {e}"),
            };
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(answer) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            // Events (no id) and other answers are not this call's.
            if answer["id"] != json!(id) {
                continue;
            }
            if let Some(error) = answer.get("error") {
                panic!("DevTools {method}: {error}");
            }
            return answer["result"].clone();
        }
    }

    /// Opens a tab on `url` (loading begins; wait for what the page shows
    /// with [`Browser::wait_for`]).
    pub fn open(&mut self, url: &str) -> Tab {
        let target = self.call(None, "Target.createTarget", json!({ "url": url }));
        let target = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        let session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        let tab = Tab {
            session,
            url: url.to_owned(),
        };
        self.call(Some(&tab.session), "Page.enable", json!({}));
        tab
    }

    /// Evaluates `expression` in `tab` (awaiting a promise), its value.
    ///
    /// # Panics
    /// When it throws.
    pub fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        let result = self.call(
            Some(&tab.session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(thrown) = result.get("exceptionDetails") {
            panic!("{} threw in {}: {thrown}", expression, tab.url);
        }
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy in `tab` (polled every 100 ms),
    /// for at most `timeout`; `what` names the wait in the failure, which
    /// shows `show` (an expression describing the page) as it was then.
    ///
    /// # Panics
    /// When the time runs out.
    pub fn wait_for(
        &mut self,
        tab: &Tab,
        what: &str,
        expression: &str,
        show: &str,
        timeout: Duration,
    ) {
        let deadline = Instant::now() + timeout;
        let wrapped = format!(
            "(() => {{ try {{ return !!({expression}); }} catch (_) {{ return false; }} }})()"
        );
        loop {
            if self.eval(tab, &wrapped) == json!(true) {
                return;
            }
            if Instant::now() >= deadline {
                let shown = self.eval(tab, show);
                panic!(
                    "{what}: not within {timeout:?} in {}; the page shows: {shown}",
                    tab.url
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG screenshot of `tab`'s whole page, beyond the window too (it
    /// is brought to the front first).
    pub fn screenshot(&mut self, tab: &Tab) -> Vec<u8> {
        self.call(Some(&tab.session), "Page.bringToFront", json!({}));
        let metrics = self.call(Some(&tab.session), "Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let (width, height) = (
            size["width"].as_f64().unwrap_or(1100.0),
            size["height"].as_f64().unwrap_or(700.0),
        );
        let shot = self.call(
            Some(&tab.session),
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
            }),
        );
        let data = shot["data"].as_str().expect("screenshot data");
        data_encoding::BASE64
            .decode(data.as_bytes())
            .expect("screenshot is base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.socket.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
