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
    /// Remove one of your devices: it receives nothing more and cannot come back without
    /// a new link.
    Remove {
        /// Its name, as `kith devices` lists it.
        name: String,
    },
}

/// How long `kith link` waits for the approval (the code's life and a margin).
const LINK_WAIT: Duration = Duration::from_secs(6 * 60);

/// `kith link [--name NAME]`.
pub(crate) async fn link(
    out: &Out,
    c: &mut Client,
    name: Option<String>,
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
                return Ok(());
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
) -> Result<(), ClientError> {
    match cmd {
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
