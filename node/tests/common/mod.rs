//! Test harness: real `kith up` daemons in their own processes, on loopback, with temporary
//! data directories and mDNS off. Waits are on conditions with timeouts, never fixed sleeps.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const KITH: &str = env!("CARGO_BIN_EXE_kith");

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One node: a data directory and, while running, its daemon process.
pub struct Node {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
    /// Listen on `port` (the default), or nowhere (`kith up --no-listen`).
    listen: bool,
    /// The daemon's `KITH_LOG` filter.
    log: String,
    /// Extra environment of the daemon.
    env: Vec<(String, String)>,
}

impl Node {
    /// A new node with a fresh data dir and a fixed loopback port; not started.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        Self {
            dir: tmp.path().to_path_buf(),
            port: free_port(),
            child: None,
            _tmp: Some(tmp),
            extra: Vec::new(),
            listen: true,
            log: "info".into(),
            env: Vec::new(),
        }
    }

    /// Extra `kith up` arguments (e.g. `--bootstrap`).
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The daemon's log filter (`KITH_LOG`), `info` by default.
    pub fn with_log(mut self, filter: &str) -> Self {
        self.log = filter.to_string();
        self
    }

    /// An environment variable for the daemon (e.g. `ALSA_CONFIG_PATH`).
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Listen nowhere: the node can only dial out (reachable through relays).
    pub fn without_listening(mut self) -> Self {
        self.listen = false;
        self
    }

    pub fn listen_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    /// The listen address with `/p2p/<peer id>` (for `--bootstrap` and `--relay`).
    pub fn p2p_addr(&self) -> String {
        let id = self.json(&["id"]);
        format!(
            "{}/p2p/{}",
            self.listen_addr(),
            id[0]["peer_id"].as_str().expect("peer id")
        )
    }

    /// Starts the daemon and waits until its API answers.
    pub fn start(&mut self) -> &mut Self {
        assert!(self.child.is_none(), "already running");
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let log = std::fs::File::create(self.dir.join(format!("daemon-{stamp}.log"))).ok();
        let mut cmd = Command::new(KITH);
        cmd.arg("--data-dir")
            .arg(&self.dir)
            .args(["up", "--no-mdns"]);
        if self.listen {
            cmd.args(["--listen", &self.listen_addr()]);
        } else {
            cmd.arg("--no-listen");
        }
        cmd.args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("KITH_LOG", &self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match log {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(Stdio::null()),
        };
        self.child = Some(cmd.spawn().expect("spawn kith up"));
        let dir = self.dir.clone();
        wait_for(Duration::from_secs(20), "daemon API", || {
            let out = run(&dir, &["--json", "status"]);
            out.status.success().then_some(())
        });
        self
    }

    /// Stops the daemon cleanly (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the daemon with SIGKILL (no chance to clean up).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs a CLI command against this node; returns the raw output.
    pub fn cli(&self, args: &[&str]) -> Output {
        run(&self.dir, args)
    }

    /// Runs a CLI command with `--json`, asserts success, parses stdout as JSON Lines.
    pub fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = run(&self.dir, &full);
        assert!(
            out.status.success(),
            "kith {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    /// `kith mailbox add ARGS` (asserted to succeed), then waits until the user record that
    /// lists the mailbox went out (stored, or no DHT peer took it): the command answers
    /// once the mailbox accepted, and the record, which senders look up to find the
    /// mailbox, follows in the background (`kith status` shows it).
    pub fn add_mailbox(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["mailbox", "add"];
        full.extend_from_slice(args);
        let out = self.json(&full);
        wait_for(
            Duration::from_secs(60),
            "the record listing the mailbox",
            || {
                let st = self.json(&["status"]);
                (st[0]["record"] != "publishing").then_some(())
            },
        );
        out
    }

    pub fn code(&self) -> String {
        self.json(&["id"])[0]["code"]
            .as_str()
            .expect("code")
            .to_string()
    }

    pub fn add(&self, other: &Node, name: &str) {
        let code = other.code();
        self.json(&["contacts", "add", &code, "--name", name]);
    }

    /// Creates group `name` with `members` (contact names, comma-separated) and waits
    /// until each node of `reach` lists it with all `count` members; returns its id.
    pub fn create_group(&self, name: &str, members: &str, count: u64, reach: &[&Node]) -> String {
        let g = &self.json(&["group", "create", name, "--members", members])[0];
        let id = g["id"].as_str().expect("group id").to_string();
        for n in reach {
            wait_for(
                Duration::from_secs(60),
                "the group reaches its members",
                || {
                    n.json(&["groups"])
                        .into_iter()
                        .find(|g| g["id"] == id.as_str() && g["members"] == count)
                },
            );
        }
        id
    }

    /// Starts `kith --json watch` on this node: the process (to kill) and its lines.
    pub fn watch(&self) -> (Child, std::sync::mpsc::Receiver<String>) {
        let mut child = Command::new(KITH)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--json", "watch"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn kith watch");
        let lines = lines_of(child.stdout.take().expect("watch stdout"));
        (child, lines)
    }

    pub fn send(&self, to: &str, text: &str) -> String {
        self.json(&["send", to, text])[0]["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    pub fn history(&self, with: &str) -> Vec<Value> {
        self.json(&["history", with, "--limit", "10000"])
    }

    /// Waits until every message in `with`'s history sent by `from` has `status`, and there
    /// are at least `n` of them.
    pub fn wait_status(&self, with: &str, n: usize, status: &str, timeout: Duration) -> Vec<Value> {
        wait_for(
            timeout,
            &format!("{n} messages {status} with {with}"),
            || {
                let h = self.history(with);
                let mine: Vec<Value> = h.into_iter().filter(|m| m["from"] == "me").collect();
                (mine.len() >= n && mine.iter().all(|m| m["status"] == status)).then_some(mine)
            },
        )
    }

    /// Waits until `with`'s history holds at least `n` messages from them.
    pub fn wait_received(&self, with: &str, n: usize, timeout: Duration) -> Vec<Value> {
        wait_for(timeout, &format!("{n} messages from {with}"), || {
            let h = self.history(with);
            let theirs: Vec<Value> = h.into_iter().filter(|m| m["from"] != "me").collect();
            (theirs.len() >= n).then_some(theirs)
        })
    }

    /// The daemon's log so far (for failure messages).
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("daemon-") {
                    s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        s
    }
}

impl Node {
    /// The daemon's log so far without ANSI colour sequences (fields read `key=value`).
    pub fn plain_logs(&self) -> String {
        let log = self.logs();
        let mut out = String::with_capacity(log.len());
        let mut chars = log.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ params final-byte
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(KITH)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kith")
}

/// Two started nodes that have each other as contacts: (alice, bob), named "Bob" and "Alice".
pub fn pair() -> (Node, Node) {
    let mut a = Node::new();
    let mut b = Node::new();
    a.start();
    b.start();
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    (a, b)
}

/// Reads a child's stdout line by line on a thread; lines arrive on the returned channel.
pub fn lines_of(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1024);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Node {
    /// The bytes of the file of message `id`, written out by `kith save` (files are sealed
    /// at rest: only the node opens them).
    pub fn saved(&self, id: &str) -> Vec<u8> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.dir.join(format!("saved-{}-{n}", std::process::id()));
        let o = self.cli(&["save", id, "--to", out.to_str().unwrap()]);
        assert!(o.status.success(), "{o:?}");
        let bytes = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        bytes
    }
}

impl Node {
    /// The thumbnail of the photo of message `id`, written out by `kith save --thumbnail`.
    pub fn saved_thumbnail(&self, id: &str) -> Vec<u8> {
        let out = self.dir.join(format!("thumb-{}-{id}", std::process::id()));
        let o = self.cli(&["save", id, "--thumbnail", "--to", out.to_str().unwrap()]);
        assert!(o.status.success(), "{o:?}");
        let bytes = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        bytes
    }
}

/// Linking a device (issue 17).
impl Node {
    /// Starts `kith link` on this node (its daemon running): the process, its output lines,
    /// and the code it printed first.
    pub fn start_link(&self, name: &str) -> (Child, std::sync::mpsc::Receiver<String>, String) {
        self.start_link_with(name, &["--no-wait"])
    }

    /// `kith link` with more arguments (none: it waits for the history after the link).
    pub fn start_link_with(
        &self,
        name: &str,
        extra: &[&str],
    ) -> (Child, std::sync::mpsc::Receiver<String>, String) {
        let mut child = Command::new(KITH)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--json", "link", "--name", name])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kith link");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let first = lines
            .recv_timeout(Duration::from_secs(90))
            .expect("the link code");
        let v: Value = serde_json::from_str(&first).expect("json");
        assert_eq!(v["state"], "waiting", "{v}");
        let code = v["code"].as_str().expect("code").to_string();
        (child, lines, code)
    }

    /// Links this fresh, running node to `a`'s identity as `name` (`extra`: arguments to
    /// `devices approve`), then restarts it so it acts for the identity. Returns what
    /// `devices approve` and `kith link` printed.
    ///
    /// `kith link` goes on after the link: it asks for the restart, then shows the history
    /// coming until it is all here, and exits 0 (its lines include the progress objects).
    pub fn link_to(&mut self, a: &Node, name: &str, extra: &[&str]) -> (Vec<Value>, Vec<Value>) {
        let (mut child, lines, code) = self.start_link_with(name, &[]);
        let mut args = vec!["devices", "approve", code.as_str(), "--yes"];
        args.extend_from_slice(extra);
        let approved = a.json(&args);
        assert!(
            approved.iter().any(|v| v["state"] == "linked"),
            "{approved:?}"
        );
        let mut shown: Vec<Value> = Vec::new();
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(90))
                .expect("kith link asks for the restart");
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let restart = v["state"] == "restart";
            shown.push(v);
            if restart {
                break;
            }
        }
        self.stop();
        self.start();
        assert!(
            child.wait().expect("kith link").success(),
            "kith link failed"
        );
        // Every line the command printed (the reader ends at its end of output).
        shown.extend(lines.iter().filter_map(|l| serde_json::from_str(&l).ok()));
        (approved, shown)
    }
}
