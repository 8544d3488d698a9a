//! The full-screen chat in a real terminal: tmux runs a shell, the shell runs `kith`, the
//! test types with `send-keys` and reads the screen with `capture-pane`. Two `kith up`
//! daemons on 127.0.0.1. Without tmux (and no way to install it) the test says so and
//! skips; `.ci/run` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// A tmux server of the test's own (`-L`), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    fn ok(&self, args: &[&str]) {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    fn text(&self, text: &str) {
        self.ok(&["send-keys", "-t", "t", "-l", text]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    fn alternate_on(&self) -> bool {
        let out = self.cmd(&["display-message", "-p", "-t", "t", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Waits until the screen satisfies `f`.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            if start.elapsed() > T {
                panic!("timed out waiting for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Whether tmux runs here, installing it with apt-get when it is missing and we may.
fn have_tmux() -> Result<(), String> {
    let works = || {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "tmux"])
            .status();
        if works() {
            return Ok(());
        }
        return Err("tmux is missing and `apt-get install tmux` failed".into());
    }
    Err("tmux is missing and this user cannot install it (not root)".into())
}

/// The chat in a real terminal: open a chat, type, send, see ✓✓ and the reply, typing both
/// ways, react, edit, resize, quit with the terminal restored.
#[test]
fn full_screen_chat_in_a_real_terminal() {
    if let Err(why) = have_tmux() {
        println!("SKIPPED full_screen_chat_in_a_real_terminal: {why}");
        return;
    }
    let (a, b) = pair();
    let tmux = Tmux {
        socket: format!("kith-tui-test-{}", std::process::id()),
    };
    tmux.ok(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        "env",
        "PS1=shell$ ",
        "TZ=UTC",
        "TERM=xterm-256color",
        "bash",
        "--norc",
        "--noprofile",
    ]);
    tmux.wait("the shell prompt", |s| s.contains("shell$"));
    tmux.text(&format!("{KITH} --data-dir {}", a.dir.display()));
    tmux.keys(&["Enter"]);

    // The chat list, on the alternate screen.
    tmux.wait("the chat list", |s| {
        s.contains("Chats") && s.contains("Bob")
    });
    assert!(tmux.alternate_on(), "the app uses the alternate screen");

    // Open Bob's chat, type (Bob sees Alice typing), send: ✓✓ once his node has it.
    tmux.keys(&["Enter"]);
    tmux.wait("the composer", |s| {
        s.contains("Message") && s.contains("say hello")
    });
    tmux.text("hello from the full screen");
    wait_for(T, "Bob to see Alice typing", || {
        let c = b.json(&["contacts", "list"]);
        (c[0]["typing"] == "typing").then_some(())
    });
    tmux.keys(&["Enter"]);
    b.wait_received("Alice", 1, T);
    tmux.wait("✓✓ on the sent message", |s| {
        s.lines().any(|l| l.contains("you ✓✓")) && s.contains("hello from the full screen")
    });

    // Bob types, then replies: both appear; the open chat marks his reply read.
    b.json(&["typing", "Alice"]);
    tmux.wait("Bob typing", |s| s.contains("typing…"));
    b.send("Alice", "reply from bob");
    tmux.wait("Bob's reply", |s| s.contains("reply from bob"));
    b.wait_status("Alice", 1, "read", T);

    // React to his reply (Tab chooses the newest message, e opens the picker, 1 is 👍).
    tmux.keys(&["Tab"]);
    tmux.keys(&["e"]);
    tmux.wait("the reaction picker", |s| s.contains("React:"));
    tmux.keys(&["1"]);
    wait_for(T, "Bob to get the reaction", || {
        let h = b.history("Alice");
        let mine = h.iter().find(|m| m["text"] == "reply from bob")?;
        (mine["reactions"][0][0] == "Alice" && mine["reactions"][0][1] == "👍").then_some(())
    });
    tmux.wait("the reaction under the message", |s| {
        s.lines().any(|l| l.contains("👍") && l.contains("you"))
    });

    // Change our message (Tab, Up chooses it, c puts it in the composer, Enter saves).
    tmux.keys(&["Tab"]);
    tmux.keys(&["Up"]);
    tmux.keys(&["c"]);
    tmux.wait("the edit banner", |s| s.contains("changing your message"));
    tmux.text("!");
    tmux.keys(&["Enter"]);
    wait_for(T, "Bob to get the edit", || {
        let h = b.history("Alice");
        h.iter()
            .any(|m| m["text"] == "hello from the full screen!" && m["edited"] == true)
            .then_some(())
    });
    tmux.wait("(edited) on our message", |s| {
        s.contains("(edited)") && s.contains("hello from the full screen!")
    });

    // Narrow: one pane (the conversation, no list); wide again: both.
    tmux.ok(&["resize-window", "-t", "t", "-x", "50", "-y", "20"]);
    tmux.wait("the narrow layout", |s| {
        s.contains("reply from bob")
            && !s.contains("Chats")
            && s.lines().all(|l| l.chars().count() <= 50)
    });
    tmux.ok(&["resize-window", "-t", "t", "-x", "120", "-y", "35"]);
    let wide = tmux.wait("the wide layout", |s| {
        s.contains("Chats") && s.contains("reply from bob")
    });
    println!("the screen before quitting:\n{wide}");

    // Quit: the shell is back on the normal screen, in cooked mode with echo.
    tmux.keys(&["C-c"]);
    tmux.wait("the shell prompt after quitting", |s| {
        !s.contains("Message") && s.lines().filter(|l| l.starts_with("shell$")).count() >= 2
    });
    assert!(!tmux.alternate_on(), "the alternate screen was left");
    tmux.text(
        "echo rc=$?; stty -a | tr ' ' '\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo",
    );
    tmux.keys(&["Enter"]);
    let s = tmux.wait("stty's answer", |s| {
        s.contains("rc=") && s.contains("icanon ")
    });
    assert!(s.contains("rc=0"), "kith exited with 0:\n{s}");
    assert!(
        s.contains("icanon echo") && !s.contains("-icanon") && !s.contains("-echo"),
        "the terminal is back in cooked mode with echo:\n{s}"
    );
}

/// Search and forward in a real terminal: Ctrl+F, a query, Enter shows the hit with its
/// snippet, Enter again opens Bob's chat with the message chosen, f forwards it to a group,
/// and Bob gets it there, marked forwarded.
#[test]
fn search_and_forward_in_a_real_terminal() {
    if let Err(why) = have_tmux() {
        println!("SKIPPED search_and_forward_in_a_real_terminal: {why}");
        return;
    }
    let (a, b) = pair();
    a.create_group("Picnic", "Bob", 2, &[&b]);
    b.send("Alice", "the lake at noon");
    a.wait_received("Bob", 1, T);
    let tmux = Tmux {
        socket: format!("kith-tui-search-{}", std::process::id()),
    };
    tmux.ok(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "110",
        "-y",
        "30",
        "env",
        "PS1=shell$ ",
        "TZ=UTC",
        "TERM=xterm-256color",
        "bash",
        "--norc",
        "--noprofile",
    ]);
    tmux.wait("the shell prompt", |s| s.contains("shell$"));
    tmux.text(&format!("{KITH} --data-dir {}", a.dir.display()));
    tmux.keys(&["Enter"]);
    // Bob's chat (his message is the newest) above the group's.
    tmux.wait("the chat list", |s| {
        s.contains("Bob") && s.contains("# Picnic")
    });

    tmux.keys(&["C-f"]);
    tmux.wait("the search screen", |s| s.contains("Search"));
    tmux.text("lake");
    tmux.keys(&["Enter"]);
    tmux.wait("the hit with its snippet", |s| {
        s.contains("Bob · Bob") && s.contains("the lake at noon")
    });
    tmux.keys(&["Enter"]);
    tmux.wait("Bob's chat with the message chosen", |s| {
        !s.contains("🔍") && s.contains("forward") && s.contains("the lake at noon")
    });

    tmux.keys(&["f"]);
    tmux.wait("the chat picker", |s| s.contains("Forward to"));
    tmux.keys(&["Down"]);
    tmux.keys(&["Enter"]);
    tmux.wait("the notice", |s| s.contains("forwarded to Picnic"));
    wait_for(T, "Bob to get the forward in the group", || {
        b.json(&["history", "--group", "Picnic"])
            .into_iter()
            .find(|m| m["text"] == "the lake at noon" && m["forwarded"] == true)
    });
    tmux.keys(&["C-c"]);
    tmux.wait("the shell prompt after quitting", |s| {
        s.lines().filter(|l| l.starts_with("shell$")).count() >= 2
    });
}

/// Stories and a call from the screen: Ctrl+T, n, a text, Enter posts a status Bob gets;
/// once he has seen it, Alice's stories screen says so; Ctrl+G in his chat calls him (his
/// node rings, her screen shows the call), Ctrl+X hangs up.
#[test]
fn stories_and_a_call_from_the_screen() {
    if let Err(why) = have_tmux() {
        println!("SKIPPED stories_and_a_call_from_the_screen: {why}");
        return;
    }
    let node = || {
        let mut n = Node::new().with_args(&["--call-bind", "127.0.0.1"]);
        n.start();
        n
    };
    let (a, b) = (node(), node());
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    let tmux = Tmux {
        socket: format!("kith-tui-stories-{}", std::process::id()),
    };
    tmux.ok(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "110",
        "-y",
        "30",
        "env",
        "PS1=shell$ ",
        "TZ=UTC",
        "TERM=xterm-256color",
        "bash",
        "--norc",
        "--noprofile",
    ]);
    tmux.wait("the shell prompt", |s| s.contains("shell$"));
    tmux.text(&format!("{KITH} --data-dir {}", a.dir.display()));
    tmux.keys(&["Enter"]);
    tmux.wait("the chat list", |s| {
        s.contains("Chats") && s.contains("Bob")
    });

    tmux.keys(&["C-t"]);
    tmux.wait("the stories screen", |s| s.contains("Stories (24 h)"));
    tmux.keys(&["n"]);
    tmux.text("sunny on the pier");
    tmux.keys(&["Enter"]);
    tmux.wait("the notice", |s| s.contains("status posted to 1 contact"));
    wait_for(T, "Bob to get the status", || {
        b.json(&["status", "list"])
            .into_iter()
            .find(|s| s["from"] == "Alice" && s["text"] == "sunny on the pier")
    });
    b.json(&["status", "view", "Alice"]);
    // Ctrl+T again loads the stories again, until Bob's view has come.
    wait_for(T, "Bob among the viewers on Alice's screen", || {
        tmux.keys(&["C-t"]);
        std::thread::sleep(Duration::from_millis(200));
        tmux.screen().contains("seen by 1: Bob").then_some(())
    });
    tmux.keys(&["Escape"]);

    // Mute the chosen chat and give it a timer, from the list.
    tmux.keys(&["m"]);
    tmux.wait("the mute notice", |s| s.contains("Bob muted"));
    wait_for(T, "Bob muted in the store", || {
        a.json(&["contacts", "list"])
            .into_iter()
            .find(|c| c["name"] == "Bob" && c["muted"] == true)
    });
    tmux.keys(&["t"]);
    tmux.wait("the timer picker", |s| {
        s.contains("disappearing messages: 0 off")
    });
    tmux.keys(&["2"]);
    tmux.wait("the timer notice", |s| {
        s.contains("Bob: disappearing messages 1 hour")
    });

    tmux.keys(&["Enter"]);
    tmux.wait("Bob's chat", |s| {
        s.contains("say hello") || s.contains("Message")
    });
    tmux.keys(&["C-g"]);
    wait_for(T, "Bob's node to ring", || {
        b.json(&["calls", "--current"])
            .into_iter()
            .find(|c| c["state"] == "ringing" && c["contact"] == "Alice")
    });
    tmux.wait("the call line", |s| s.contains("Calling Bob"));
    tmux.keys(&["C-x"]);
    wait_for(T, "the call to end at Bob's", || {
        b.json(&["calls", "--current"])
            .first()
            .is_none_or(|c| c.is_null())
            .then_some(())
    });
    tmux.wait("the call gone from the screen", |s| {
        !s.contains("Calling Bob")
    });
    tmux.keys(&["C-c"]);
    tmux.wait("the shell prompt after quitting", |s| {
        s.lines().filter(|l| l.starts_with("shell$")).count() >= 2
    });
}

/// SIGTERM while the app runs: the terminal is put back all the same.
#[test]
fn sigterm_restores_the_terminal() {
    if let Err(why) = have_tmux() {
        println!("SKIPPED sigterm_restores_the_terminal: {why}");
        return;
    }
    let (a, _b) = pair();
    let tmux = Tmux {
        socket: format!("kith-tui-term-{}", std::process::id()),
    };
    tmux.ok(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "80",
        "-y",
        "24",
        "env",
        "PS1=shell$ ",
        "bash",
        "--norc",
        "--noprofile",
    ]);
    tmux.wait("the shell prompt", |s| s.contains("shell$"));
    let pidfile = a.dir.join("tui.pid");
    tmux.text(&format!(
        "sh -c 'echo $$ > {}; exec {KITH} --data-dir {}'",
        pidfile.display(),
        a.dir.display()
    ));
    tmux.keys(&["Enter"]);
    tmux.wait("the chat list", |s| s.contains("Chats"));
    assert!(tmux.alternate_on());
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let st = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(st.success());
    tmux.wait("the shell prompt after SIGTERM", |s| {
        !s.contains("Chats") && s.lines().filter(|l| l.starts_with("shell$")).count() >= 2
    });
    assert!(!tmux.alternate_on(), "the alternate screen was left");
    tmux.text("stty -a | tr ' ' '\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo");
    tmux.keys(&["Enter"]);
    let s = tmux.wait("stty's answer", |s| s.contains("icanon "));
    assert!(
        s.contains("icanon echo") && !s.contains("-icanon"),
        "cooked mode with echo:\n{s}"
    );
}

/// Without a terminal, `kith` alone does not try to draw: exit 1 with a pointer to the
/// line mode (scripts piping into `kith` get an error, not escape sequences).
#[test]
fn without_a_terminal_kith_alone_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&[][..], &["chat"][..]] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("needs a terminal") && err.contains("kith chat NAME"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "nothing drawn: {:?}", out.stdout);
    }
}
