//! Getting started: `kith up --detach` (the node in the background, returning once its API
//! answers), shell completions and the man page, both generated from the clap definition.

use std::io::Write;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use kith_api::methods::{self, NoParams};
use kith_api::{Client, SOCKET_NAME};

use crate::args::Cli;
use crate::output::Out;

/// How long `kith up --detach` waits for the node's API.
const DETACH_WAIT: Duration = Duration::from_secs(60);
/// The daemon's log file in the data directory when detached.
pub const LOG_FILE: &str = "kith.log";

/// `kith completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kith", &mut buf);
    let _ = std::io::stdout().lock().write_all(&buf);
    ExitCode::SUCCESS
}

/// `kith man`: the man page (roff) on stdout.
pub fn man(out: &Out) -> ExitCode {
    let mut buf = Vec::new();
    if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut buf) {
        out.error(&format!("cannot render the man page: {e}"));
        return ExitCode::from(2);
    }
    let _ = std::io::stdout().lock().write_all(&buf);
    ExitCode::SUCCESS
}

/// `kith up --detach`: runs this same command without `--detach` in the background (its
/// own process group, so the shell's Ctrl-C does not reach it; stdout to nowhere, stderr
/// to `kith.log` in the data directory), and returns once the node's API answers. Exits 2
/// when the node stops before that (its log says why), 3 when it does not answer in time.
pub async fn detach(out: &Out, dir: &Path, passphrase_file: Option<&Path>) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            out.error(&format!("cannot find this program: {e}"));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        out.error(&format!("cannot create {}: {e}", dir.display()));
        return ExitCode::from(1);
    }
    let log_path = dir.join(LOG_FILE);
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
    {
        Ok(f) => f,
        Err(e) => {
            out.error(&format!("cannot open {}: {e}", log_path.display()));
            return ExitCode::from(1);
        }
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    // A protected key file: the passphrase is read (and checked) here, on the terminal,
    // and handed to the background node on its standard input.
    let passphrase = match crate::passphrase_cmd::for_up(dir, passphrase_file) {
        Ok(p) => p,
        Err(e) => {
            out.error(&e);
            return ExitCode::from(1);
        }
    };
    if let Some(p) = &passphrase
        && let Err(e) = crate::passphrase_cmd::check(dir, p)
    {
        out.error(&e);
        return ExitCode::from(1);
    }
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args).env("KITH_HOME", dir);
    if passphrase.is_some() {
        cmd.env(crate::passphrase_cmd::PASSPHRASE_STDIN_ENV, "1")
            .stdin(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null());
    }
    let mut child = match cmd
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            out.error(&format!("cannot start the node: {e}"));
            return ExitCode::from(2);
        }
    };
    if let (Some(p), Some(mut stdin)) = (&passphrase, child.stdin.take()) {
        use std::io::Write;
        let mut line = zeroize::Zeroizing::new(p.as_bytes().to_vec());
        line.push(b'\n');
        // A child that already stopped is reported below.
        let _ = stdin.write_all(&line);
    }
    drop(passphrase);
    let sock = dir.join(SOCKET_NAME);
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            out.error(&format!(
                "the node stopped ({status}); see {}",
                log_path.display()
            ));
            return ExitCode::from(2);
        }
        if let Ok(mut c) = Client::connect(&sock).await
            && c.call::<methods::Status>(NoParams {}).await.is_ok()
        {
            out.detached(child.id(), &sock, &log_path);
            return ExitCode::SUCCESS;
        }
        if start.elapsed() > DETACH_WAIT {
            out.error(&format!(
                "the node did not answer within {} s; see {}",
                DETACH_WAIT.as_secs(),
                log_path.display()
            ));
            return ExitCode::from(3);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
