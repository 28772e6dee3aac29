//! Black-box harness: runs the real `isms` binary and talks to it over HTTP (reqwest) and raw TCP.
//!
//! Every wait is bounded; every failure panics with what the server wrote on stderr, so a red test says
//! why without re-running it by hand.
use std::ffi::OsStr;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_isms");

/// The key every server gets through `ISMS_BOOTSTRAP_KEY` unless a test asks otherwise (32+ characters).
pub const TEST_KEY: &str = "isms_test_bootstrap_key_0123456789_abcdefXYZ";

/// How long a server may take to print its banner and answer `/status`.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs an async test body on a fresh runtime, failing it if it takes longer than `limit`.
pub fn run_test<T, F: Future<Output = T>>(limit: Duration, body: F) -> T {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime");
    runtime.block_on(async move {
        match tokio::time::timeout(limit, body).await {
            Ok(value) => value,
            Err(_) => panic!("the test took longer than {limit:?}"),
        }
    })
}

/// A `Command` for the binary, without any `ISMS_...` variable inherited from the caller's environment.
pub fn isms_command() -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ISMS_") {
            command.env_remove(&name);
        }
    }
    command
}

fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The answer to an HTTP request.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers (names lowercase).
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub text: String,
}

impl Reply {
    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|error| {
            panic!(
                "answer {} is not JSON ({error}): {:.500}",
                self.status, self.text
            )
        })
    }

    /// Asserts the documented error shape `{"status": "...", "code": N, "error": "..."}` with this code, and
    /// returns the error message.
    pub fn error_message(&self, code: u16) -> String {
        assert_eq!(
            self.status, code,
            "expected status {code}, got {}: {}",
            self.status, self.text
        );
        let body = self.json();
        assert_eq!(
            body["code"], code,
            "the body's code must repeat the status: {body}"
        );
        assert!(
            body["status"]
                .as_str()
                .is_some_and(|status| !status.is_empty()),
            "the body needs a status text: {body}"
        );
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("the body needs an error message: {body}"));
        assert!(!message.is_empty(), "empty error message: {body}");
        message.to_string()
    }
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "answer {} is not JSON ({error}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends `request` byte for byte on a new connection and reads one HTTP/1.1 response (bounded in time).
pub fn raw_exchange(address: SocketAddr, request: &[u8]) -> std::io::Result<RawResponse> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request)?;
    stream.flush()?;
    read_response(&mut stream)
}

/// Sends each request in turn on ONE connection (keep-alive), reading each response before the next request.
pub fn raw_exchanges(address: SocketAddr, requests: &[&[u8]]) -> std::io::Result<Vec<RawResponse>> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut responses = Vec::new();
    for request in requests {
        stream.write_all(request)?;
        stream.flush()?;
        responses.push(read_response(&mut stream)?);
    }
    Ok(responses)
}

fn read_response(stream: &mut TcpStream) -> std::io::Result<RawResponse> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(invalid(format!(
                "connection closed before the response headers: {:?}",
                String::from_utf8_lossy(&buffer)
            )));
        }
        buffer.extend_from_slice(&chunk[..n]);
        if buffer.len() > 1 << 20 {
            return Err(invalid("response headers too long".into()));
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut body = buffer[header_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok());
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(invalid(format!(
                        "connection closed after {} of {length} body bytes",
                        body.len()
                    )));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(length);
        }
        None => loop {
            // No length: the body runs to the end of the connection.
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        },
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

/// Where the third-party data lives (read in place, never copied into the project).
pub fn shared_data_root() -> PathBuf {
    match std::env::var_os("ISMS_TEST_SHARED_DATA") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// A path under the shared data, or `None` (with a note) when it is missing; missing data fails the test
/// when `CI` is set.
pub fn shared_data(relative: &str) -> Option<PathBuf> {
    let path = shared_data_root().join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "shared test data {} is missing and CI is set: this test must not be skipped",
            path.display()
        );
    }
    eprintln!(
        "note: shared test data {} is missing; skipping this test (it fails when CI is set)",
        path.display()
    );
    None
}

/// A tool a test needs (`what` names it and how to get it), passed through when `found`; a missing one
/// skips the test with a note, or fails it when `CI` is set, as [`shared_data`] does for data.
pub fn required_tool<T>(found: Option<T>, what: &str) -> Option<T> {
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{what} is missing and CI is set: this test must not be skipped");
        }
        eprintln!("note: {what} is missing; skipping this test (it fails when CI is set)");
    }
    found
}

/// What a finished command printed.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, as bytes (tests look for raw control bytes).
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// Standard output as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics unless the command succeeded.
    pub fn assert_success(&self, what: &str) -> &Self {
        assert!(
            self.status.success(),
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout_text(),
            self.stderr
        );
        self
    }
}

/// Runs a child process to completion within `timeout` (killed and reported otherwise).
pub fn run_bounded(mut command: Command, timeout: Duration) -> CliOutput {
    let description = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {description}: {error}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_thread = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr =
                    String::from_utf8_lossy(&err_thread.join().unwrap_or_default()).into_owned();
                panic!("{description} did not finish within {timeout:?}; stderr:\n{stderr}");
            }
            Err(error) => panic!("cannot wait for {description}: {error}"),
        }
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_thread.join().unwrap_or_default()).into_owned();
    CliOutput {
        status,
        stdout,
        stderr,
    }
}

/// Runs `isms ARGS` with these environment variables (and none inherited `ISMS_...`), within 30 s.
pub fn run_isms<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> CliOutput {
    let mut command = isms_command();
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    run_bounded(command, Duration::from_secs(30))
}

/// A running `isms serve` over its own temporary data directory; killed when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    data: tempfile::TempDir,
    env: Vec<(String, String)>,
    stderr: Arc<Mutex<Vec<u8>>>,
    http: reqwest::Client,
    /// The address it listens on (a new port after each restart).
    pub address: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A live key: the bootstrap key, from `ISMS_BOOTSTRAP_KEY` or from the banner.
    pub key: String,
    /// The banner printed on stdout by the last start.
    pub banner: Vec<String>,
    /// Where the syslog receivers listen (ports chosen by the system), when they run.
    pub syslog_udp: Option<SocketAddr>,
    pub syslog_tcp: Option<SocketAddr>,
    pub syslog_tls: Option<SocketAddr>,
    /// The queue and the broker's `host:port` of the AMQP consumer, when it runs (`  amqp       QUEUE on
    /// HOST:PORT`).
    pub amqp: Option<(String, String)>,
}

impl ServerProcess {
    /// Starts `isms serve --data TEMPDIR --listen 127.0.0.1:0` with `ISMS_BOOTSTRAP_KEY` = [`TEST_KEY`], then
    /// `extra_env` (which may override it; an empty `ISMS_BOOTSTRAP_KEY` makes the server generate the key).
    pub fn start(extra_env: &[(&str, &str)]) -> ServerProcess {
        // The HTTP client's TLS needs a crypto provider chosen once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data = tempfile::Builder::new()
            .prefix("isms-test-")
            .tempdir()
            .expect("cannot create a temporary data directory");
        // Syslog on ports of the system's choosing: tests run side by side.
        let mut env = vec![
            ("ISMS_BOOTSTRAP_KEY".to_string(), TEST_KEY.to_string()),
            (
                "ISMS_SYSLOG_UDP_LISTEN".to_string(),
                "127.0.0.1:0".to_string(),
            ),
            (
                "ISMS_SYSLOG_TCP_LISTEN".to_string(),
                "127.0.0.1:0".to_string(),
            ),
            // Detections are events too: tests of other parts count events without them
            // (tests/detect.rs turns detection on).
            ("ISMS_DETECT_ENABLED".to_string(), "off".to_string()),
        ];
        for (name, value) in extra_env {
            env.retain(|(existing, _)| existing != name);
            env.push((name.to_string(), value.to_string()));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("cannot build the HTTP client");
        let mut server = ServerProcess {
            child: None,
            data,
            env,
            stderr: Arc::new(Mutex::new(Vec::new())),
            http,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            base: String::new(),
            key: String::new(),
            banner: Vec::new(),
            syslog_udp: None,
            syslog_tcp: None,
            syslog_tls: None,
            amqp: None,
        };
        server.launch();
        server
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The end of what the server wrote on stderr (all starts).
    pub fn stderr_tail(&self) -> String {
        let bytes = self
            .stderr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        tail(&String::from_utf8_lossy(&bytes), 6000).to_string()
    }

    /// Panics with `message` and the server's stderr.
    pub fn fail(&self, message: impl std::fmt::Display) -> ! {
        panic!(
            "{message}\n--- isms serve stderr (tail) ---\n{}",
            self.stderr_tail()
        )
    }

    fn launch(&mut self) {
        let mut command = isms_command();
        command
            .arg("serve")
            .arg("--data")
            .arg(self.data.path())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {BIN} serve: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr_buffer = self.stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                stderr_buffer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        let (lines_sender, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_sender.send(line).is_err() {
                    // Nobody listens any more; keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        let mut banner = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(remaining) {
                Ok(line) => {
                    let done = line.starts_with("  auth");
                    banner.push(line);
                    if done {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.kill9();
                    self.fail(format!("isms serve printed no complete banner within {START_TIMEOUT:?}; stdout so far: {banner:#?}"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().and_then(|child| child.wait().ok());
                    self.child = None;
                    // Give the stderr thread a moment to collect the last words.
                    std::thread::sleep(Duration::from_millis(100));
                    self.fail(format!("isms serve exited ({status:?}) before printing its banner; stdout: {banner:#?}"));
                }
            }
        }
        let listening = banner
            .iter()
            .find_map(|line| line.strip_prefix("  listening  "))
            .unwrap_or_else(|| {
                self.fail(format!(
                    "no `  listening  ` line in the banner: {banner:#?}"
                ))
            });
        let address: SocketAddr = listening
            .trim()
            .strip_prefix("http://")
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| self.fail(format!("cannot read the address in {listening:?}")));
        assert_eq!(
            address.ip().to_string(),
            "127.0.0.1",
            "the server must listen where it was told"
        );
        assert_ne!(
            address.port(),
            0,
            "the banner must show the real port, not 0"
        );
        let syslog = |transport: &str| {
            banner.iter().find_map(|line| {
                line.strip_prefix("  syslog     ")?
                    .strip_prefix(transport)?
                    .trim()
                    .parse::<SocketAddr>()
                    .ok()
            })
        };
        self.syslog_udp = syslog("udp ");
        self.syslog_tcp = syslog("tcp ");
        self.syslog_tls = syslog("tls ");
        self.amqp = banner.iter().find_map(|line| {
            let (queue, broker) = line
                .strip_prefix("  amqp       ")?
                .trim()
                .rsplit_once(" on ")?;
            Some((queue.to_string(), broker.to_string()))
        });
        if let Some(key_line) = banner
            .iter()
            .find_map(|line| line.strip_prefix("  key        "))
        {
            let key_line = key_line.trim();
            if key_line.starts_with("isms_") {
                self.key = key_line.to_string();
            } else if key_line.contains("ISMS_BOOTSTRAP_KEY") {
                self.key = self
                    .env
                    .iter()
                    .find(|(name, _)| name == "ISMS_BOOTSTRAP_KEY")
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default();
            } else {
                self.fail(format!("cannot read the key line {key_line:?}"));
            }
        } else if !banner.iter().any(|line| line.starts_with("  keys       ")) {
            self.fail(format!(
                "the banner neither shows a key nor counts existing keys: {banner:#?}"
            ));
        }
        // On a restart the existing keys stay valid; `self.key` keeps the one found at the first start.
        assert!(
            !self.key.is_empty(),
            "no key known for this server; banner: {banner:#?}"
        );
        self.address = address;
        self.base = format!("http://{address}");
        self.banner = banner;
        self.wait_until_ready(deadline);
    }

    fn wait_until_ready(&mut self, deadline: Instant) {
        let request = format!(
            "GET /status HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        );
        loop {
            let last = match raw_exchange(self.address, request.as_bytes()) {
                Ok(response) if response.status == 200 => return,
                Ok(response) => format!(
                    "status {}: {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                ),
                Err(error) => error.to_string(),
            };
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                self.fail(format!(
                    "isms serve exited ({status}) before /status answered"
                ));
            }
            if Instant::now() >= deadline {
                self.fail(format!(
                    "/status did not answer 200 within {START_TIMEOUT:?}; last: {last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server with SIGKILL (no graceful shutdown) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM (a graceful shutdown) and waits for it to exit.
    #[allow(dead_code)]
    pub fn stop_gracefully(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = std::time::Instant::now() + START_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("the server did not stop within {START_TIMEOUT:?} of SIGTERM");
                    }
                }
            }
        }
    }

    /// Starts the server again after [`ServerProcess::stop_gracefully`] or a kill.
    #[allow(dead_code)]
    pub fn start_again(&mut self) {
        self.launch();
    }

    /// Kills the server (if running) and starts it again on the same data directory and environment.
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    // ------------------------------------------------------------------------------------------
    // HTTP

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn finish(&self, what: &str, result: reqwest::Result<reqwest::Response>) -> Reply {
        let response = match result {
            Ok(response) => response,
            Err(error) => self.fail(format!("{what}: request failed: {error:?}")),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        match response.text().await {
            Ok(text) => Reply {
                status,
                headers,
                text,
            },
            Err(error) => self.fail(format!(
                "{what}: cannot read the answer ({status}): {error:?}"
            )),
        }
    }

    /// POSTs `body` to `path` with `key` as a bearer token (none when `None`) and extra headers.
    pub async fn post_with(
        &self,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        let mut request = self.http.post(self.url(path)).body(body.into());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.finish(&format!("POST {path}"), request.send().await)
            .await
    }

    /// Sends `method path` with `key` as a bearer token (none when `None`) and a JSON body (none
    /// when `None`).
    #[allow(dead_code)] // not every test file sends other methods
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.http.request(method.clone(), self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        self.finish(&format!("{method} {path}"), request.send().await)
            .await
    }

    /// POSTs `body` to `/events` with the server's key.
    pub async fn post_events(&self, body: impl Into<Vec<u8>>) -> Reply {
        self.post_with("/events", Some(&self.key), &[], body).await
    }

    /// POSTs to `/events` and asserts every item was accepted; returns the answer.
    pub async fn post_events_ok(&self, body: impl Into<Vec<u8>>) -> Value {
        let reply = self.post_events(body).await;
        if reply.status != 200 {
            self.fail(format!(
                "POST /events answered {}: {}",
                reply.status, reply.text
            ));
        }
        let answer = reply.json();
        assert_eq!(answer["status"], "ok", "{answer}");
        assert_eq!(answer["rejected"], serde_json::json!([]), "{answer}");
        answer
    }

    /// GET `path` with query parameters (URL-encoded here) and the server's key.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        let request = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.key)
            .query(query);
        self.finish(&format!("GET {path} {query:?}"), request.send().await)
            .await
    }

    /// GET without any key.
    pub async fn get_without_key(&self, path: &str) -> Reply {
        let request = self.http.get(self.url(path));
        self.finish(&format!("GET {path}"), request.send().await)
            .await
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let reply = self.get(path, query).await;
        if reply.status != 200 {
            self.fail(format!(
                "GET {path} {query:?} answered {}: {}",
                reply.status, reply.text
            ));
        }
        reply.json()
    }

    /// How many stored events match `q`.
    pub async fn count(&self, q: &str) -> u64 {
        let answer = self.get_json("/api/events/count", &[("q", q)]).await;
        answer["count"]
            .as_u64()
            .unwrap_or_else(|| self.fail(format!("count for {q:?} is not a number: {answer}")))
    }

    /// The events matching `q` (one page of up to 10,000, newest first).
    pub async fn search(&self, q: &str) -> Vec<Value> {
        let answer = self
            .get_json("/api/events", &[("q", q), ("limit", "10000")])
            .await;
        assert!(
            answer["next_cursor"].is_null(),
            "more than one page for {q:?}"
        );
        answer["events"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| self.fail(format!("no events array: {answer}")))
    }

    /// The single event matching `q`.
    pub async fn search_one(&self, q: &str) -> Value {
        let mut events = self.search(q).await;
        if events.len() != 1 {
            self.fail(format!(
                "expected exactly one event for {q:?}, found {}: {events:#?}",
                events.len()
            ));
        }
        events.remove(0)
    }

    /// The value of one series of `/metrics` (`name` or `name{label="value"}`), if the server shows it.
    /// Waits (up to 10 s) until `q` finds `expected` events, which arrive asynchronously (after a
    /// socket write, a publish, a file append); fails if it finds more. Returns them.
    #[allow(dead_code)] // not every test binary waits for asynchronous deliveries
    pub async fn wait_for_exactly(&self, q: &str, expected: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.count(q).await;
            if found >= expected {
                assert_eq!(found, expected, "{q}: more events than sent");
                return self.search(q).await;
            }
            if Instant::now() > deadline {
                self.fail(format!("{q}: {found} of {expected} events after 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metric(&self, series: &str) -> Option<f64> {
        let reply = self.get("/metrics", &[]).await;
        if reply.status != 200 {
            self.fail(format!(
                "GET /metrics answered {}: {}",
                reply.status, reply.text
            ));
        }
        reply.text.lines().find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    }

    /// Asserts the server still answers `/status` and still accepts an event.
    pub async fn assert_still_up(&self) {
        let status = self.get_without_key("/status").await;
        if status.status != 200 {
            self.fail(format!(
                "/status answered {} after the bad request: {}",
                status.status, status.text
            ));
        }
        let marker = format!("still-up-{}", self.address.port());
        let before = self.count(&format!("details.marker:{marker}")).await;
        self.post_events_ok(format!(
            "{{\"summary\":\"still up\",\"details\":{{\"marker\":\"{marker}\"}}}}"
        ))
        .await;
        assert_eq!(
            self.count(&format!("details.marker:{marker}")).await,
            before + 1,
            "the server no longer stores events"
        );
    }

    /// `isms ARGS --data DATA_DIR`, on this server's data directory.
    pub fn run_key_command(&self, args: &[&str]) -> CliOutput {
        let mut all: Vec<&OsStr> = vec![OsStr::new("key")];
        all.extend(args.iter().map(OsStr::new));
        all.push(OsStr::new("--data"));
        all.push(self.data.path().as_os_str());
        run_isms(&all, &[])
    }

    /// `isms ARGS` with `ISMS_URL` and `ISMS_KEY` pointing at this server.
    pub fn run_client_command(&self, args: &[&str]) -> CliOutput {
        run_isms(args, &[("ISMS_URL", &self.base), ("ISMS_KEY", &self.key)])
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
