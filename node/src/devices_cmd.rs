//! `kith link` (on a new device) and `kith devices [approve|remove]` (on a linked one).
//!
//! Linking: the new device shows a one-time code (and a QR); `kith devices approve CODE`
//! on a device already linked shows the confirmation words, which the new device shows
//! too; the person approves (or `--yes` in scripts) and the new device takes the identity
//! (its daemon then restarts to act for it).

use std::time::{Duration, Instant};

use clap::Subcommand;
use kith_api::methods::{
    self, ApproveParams, DeviceNameParams, LinkStartParams, LinkView, NoParams,
};
use kith_api::{Client, ClientError};

use crate::cli::usage;
use crate::output::Out;

#[derive(Debug, Subcommand)]
pub(crate) enum DevicesCmd {
    /// Approve a new device with the code it shows (`kith link` there).
    Approve {
        /// The link code.
        code: String,
        /// Do not ask: approve once the words are shown (for scripts).
        #[arg(long)]
        yes: bool,
        /// Days of conversations handed to the new device (0: none).
        #[arg(long, default_value_t = 90)]
        history_days: u32,
    },
    /// The history handed over at link time: how far it came (`--wait`: a progress bar
    /// until it is all here).
    History {
        /// Show a progress bar until the history is all here.
        #[arg(long)]
        wait: bool,
    },
    /// Remove one of your devices: it receives nothing more and cannot come back without
    /// a new link.
    Remove {
        /// Its name, as `kith devices` lists it.
        name: String,
    },
}

/// How long `kith link` waits for the approval (the code's life and a margin).
const LINK_WAIT: Duration = Duration::from_secs(6 * 60);

/// `kith link [--name NAME] [--no-wait]`: once linked, unless `--no-wait`, the history
/// coming as a progress bar (through the socket in the data directory `dir`).
pub(crate) async fn link(
    out: &Out,
    c: &mut Client,
    name: Option<String>,
    no_wait: bool,
    dir: &std::path::Path,
) -> Result<(), ClientError> {
    let v = c
        .call::<methods::LinkStart>(LinkStartParams { name })
        .await?;
    let code = v.code.clone().unwrap_or_default();
    if out.json() {
        out.json_value(&v);
    } else {
        out.text("On a device already linked, run:");
        out.text(&format!("  kith devices approve {code}"));
        if let Some(q) = crate::output::qr(&code) {
            out.text(&q);
        }
        out.text("The code works once, for 5 minutes. Waiting…");
    }
    let start = Instant::now();
    let mut shown_words = false;
    while start.elapsed() < LINK_WAIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let v = c.call::<methods::LinkStatus>(NoParams {}).await?;
        match v.state.as_str() {
            "confirm" if !shown_words => {
                shown_words = true;
                show_words(out, &v);
            }
            "linked" => {
                if !shown_words && v.words.is_some() {
                    // The approval came between two polls: the words still go first.
                    let confirm = LinkView {
                        state: "confirm".into(),
                        ..v.clone()
                    };
                    show_words(out, &confirm);
                }
                if out.json() {
                    out.json_value(&v);
                } else {
                    out.text(&format!(
                        "Linked. {}",
                        v.detail.as_deref().unwrap_or_default()
                    ));
                }
                if no_wait {
                    return Ok(());
                }
                return history_wait(out, &dir.join(kith_api::SOCKET_NAME), true).await;
            }
            "failed" => {
                return Err(usage(format!(
                    "the link failed: {}",
                    v.detail.as_deref().unwrap_or("unknown")
                )));
            }
            _ => {}
        }
    }
    Err(usage("no device approved the link in time".into()))
}

/// How often the history's progress is asked for.
const HISTORY_POLL: Duration = Duration::from_millis(300);

/// Shows the history handed over at link time as a progress bar until it is all here.
/// `after_link`: the daemon must restart first to act for the identity; until it answers
/// again as the linked device, this waits (and says so once).
pub(crate) async fn history_wait(
    out: &Out,
    socket: &std::path::Path,
    after_link: bool,
) -> Result<(), ClientError> {
    let start = Instant::now();
    let mut said_restart = false;
    let mut last_line = String::new();
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let got = match Client::connect(socket).await {
            Ok(mut c) => match c.call::<methods::LinkStatus>(NoParams {}).await {
                // Still the daemon that took the link: it must restart.
                Ok(v) if after_link && v.state == "linked" => None,
                Ok(_) => c.call::<methods::DevicesHistory>(NoParams {}).await.ok(),
                Err(_) => None,
            },
            Err(_) => None,
        };
        let Some(p) = got else {
            if after_link && !said_restart {
                said_restart = true;
                if out.json() {
                    out.json_value(&serde_json::json!({"state": "restart"}));
                } else {
                    out.text(
                        "Restart the daemon (kith up) to use this device; the history follows.",
                    );
                }
            }
            tokio::time::sleep(HISTORY_POLL).await;
            continue;
        };
        let now = Instant::now();
        let (t0, m0) = *first.get_or_insert((now, p.messages_done));
        let secs = now.duration_since(t0).as_secs_f64();
        let rate = if secs > 0.5 {
            (p.messages_done.saturating_sub(m0)) as f64 / secs
        } else {
            0.0
        };
        let line = progress_line(&p, rate);
        if out.json() {
            if line != last_line {
                out.json_value(&p);
            }
        } else if line != last_line {
            eprint!("\r{line}");
        }
        last_line = line;
        match p.state.as_str() {
            "done" => {
                if !out.json() {
                    eprintln!();
                    out.text(&format!(
                        "History here: {} conversations, {} messages ({:.1} s).",
                        p.conversations,
                        p.stored,
                        start.elapsed().as_secs_f64()
                    ));
                }
                return Ok(());
            }
            "waiting" | "receiving" | "sending" if after_link || p.state != "waiting" => {}
            _ => {
                if !out.json() {
                    eprintln!();
                }
                return Ok(());
            }
        }
        tokio::time::sleep(HISTORY_POLL).await;
    }
}

/// One line of the bar: `[#####-----] conversations 3 of 7, messages 120 of 400, 50/s, 6 s left`.
fn progress_line(p: &methods::HistoryProgressView, rate: f64) -> String {
    const WIDTH: u64 = 24;
    let filled = (p.messages_done * WIDTH)
        .checked_div(p.messages)
        .unwrap_or(if p.state == "done" { WIDTH } else { 0 })
        .min(WIDTH);
    let left = if rate > 0.0 {
        format!(
            ", {:.0} s left",
            (p.messages.saturating_sub(p.messages_done)) as f64 / rate
        )
    } else {
        String::new()
    };
    format!(
        "history [{}{}] conversations {} of {}, messages {} of {}, {:.0}/s{left}",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize),
        p.conversations_done,
        p.conversations,
        p.messages_done,
        p.messages,
        rate
    )
}

/// Shows the confirmation words to compare with the other screen.
fn show_words(out: &Out, v: &LinkView) {
    if out.json() {
        out.json_value(v);
    } else {
        out.text(&format!(
            "Check that the other device shows: {}",
            v.words.as_deref().unwrap_or_default()
        ));
    }
}

/// `kith devices [approve CODE | remove NAME]`.
pub(crate) async fn run(
    out: &Out,
    c: &mut Client,
    cmd: Option<DevicesCmd>,
    dir: &std::path::Path,
) -> Result<(), ClientError> {
    match cmd {
        Some(DevicesCmd::History { wait }) => {
            if wait {
                return history_wait(out, &dir.join(kith_api::SOCKET_NAME), false).await;
            }
            // Without --wait: one line (or JSON object), as it stands.
            let p = c.call::<methods::DevicesHistory>(NoParams {}).await?;
            if out.json() {
                out.json_value(&p);
            } else {
                out.text(&format!("{}: {}", p.state, progress_line(&p, 0.0)));
            }
            return Ok(());
        }
        None => {
            let list = c.call::<methods::Devices>(NoParams {}).await?;
            for d in list {
                if out.json() {
                    out.json_value(&d);
                    continue;
                }
                let seen = if d.this {
                    "this device".to_string()
                } else if d.online {
                    "online".to_string()
                } else {
                    match d.last_seen {
                        Some(ms) => format!("last seen {}", crate::output::local(ms)),
                        None => "not seen since the daemon started".to_string(),
                    }
                };
                let platform = d
                    .platform
                    .as_deref()
                    .map(|p| format!("  {}", crate::safe::printable(p)))
                    .unwrap_or_default();
                out.text(&format!(
                    "{}{platform}  ({seen})",
                    crate::safe::printable(&d.name)
                ));
            }
        }
        Some(DevicesCmd::Approve {
            code,
            yes,
            history_days,
        }) => {
            let v = c
                .call::<methods::DevicesApprove>(ApproveParams {
                    code,
                    history_days: Some(history_days),
                })
                .await?;
            let words = v.words.clone().unwrap_or_default();
            if out.json() {
                out.json_value(&v);
            } else {
                out.text(&format!(
                    "New device {}: check that it shows: {words}",
                    crate::safe::printable(v.device.as_deref().unwrap_or("?"))
                ));
            }
            if !yes && !ask("Do both screens show the same words? [y/N] ") {
                return Err(usage("not approved".into()));
            }
            let v = c.call::<methods::DevicesConfirm>(NoParams {}).await?;
            if out.json() {
                out.json_value(&v);
            } else {
                out.text(&format!(
                    "Linked {}.",
                    crate::safe::printable(v.device.as_deref().unwrap_or("the new device"))
                ));
            }
        }
        Some(DevicesCmd::Remove { name }) => {
            let v = c
                .call::<methods::DevicesRemove>(DeviceNameParams { name })
                .await?;
            if out.json() {
                out.json_value(&v);
            } else {
                out.text(&format!(
                    "Removed {}: it receives nothing more.",
                    crate::safe::printable(&v.name)
                ));
            }
        }
    }
    Ok(())
}

/// Asks a yes/no question on the terminal; false when there is none.
fn ask(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    let mut o = std::io::stdout().lock();
    let _ = write!(o, "{question}");
    let _ = o.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}
