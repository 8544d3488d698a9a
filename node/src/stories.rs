//! `kith status post|list|view|delete|privacy`: status updates (stories), shown to your
//! contacts for 24 hours. (`kith status` alone still shows the node's connections.)

use clap::Subcommand;
use kith_api::methods::{self, NoParams};
use kith_api::{Client, ClientError};
use kith_engine::command::StoryView;
use serde_json::Value;

use crate::output::{Out, json_line, line, local};
use crate::safe::printable;

/// Status updates (stories).
#[derive(Debug, Subcommand)]
pub enum StatusCmd {
    /// Post a status update: your contacts see it for 24 hours (who exactly: `kith status privacy`).
    Post {
        /// The text (with --photo: its caption).
        #[arg(long, required_unless_present = "photo")]
        text: Option<String>,
        /// A photo (at most 32 MiB): your contacts' devices fetch it like a photo message.
        #[arg(long, value_name = "FILE")]
        photo: Option<std::path::PathBuf>,
    },
    /// Your status updates with who viewed them, then your contacts' (unviewed marked *).
    List,
    /// Show a contact's status updates (they learn you viewed them, if read receipts are on).
    View {
        /// The contact's name.
        name: String,
    },
    /// Take one of your status updates back (also from your contacts' devices).
    Delete {
        /// The id `kith status list` shows.
        id: String,
    },
    /// Show or set who sees your status updates: `contacts` (everyone you added),
    /// `except NAME…` or `only NAME…`.
    Privacy {
        /// contacts, except or only.
        #[arg(value_parser = ["contacts", "except", "only"])]
        mode: Option<String>,
        /// The contacts `except` leaves out or `only` names.
        people: Vec<String>,
    },
}

/// Runs one `kith status` subcommand.
pub(crate) async fn run(out: &Out, c: &mut Client, cmd: StatusCmd) -> Result<(), ClientError> {
    match cmd {
        StatusCmd::Post { text, photo } => {
            // The daemon reads the photo: give it a full path.
            let photo = photo.map(|p| {
                std::path::absolute(&p)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned()
            });
            let v = c
                .call::<methods::StatusPost>(methods::StatusPostParams {
                    text: text.unwrap_or_default(),
                    photo,
                    manifest: None,
                })
                .await?;
            if out.json {
                json_line(&v);
            } else {
                line(&format!(
                    "{}  posted to {} contact(s), until {}",
                    v.id,
                    v.audience,
                    local(v.expires_at)
                ));
            }
        }
        StatusCmd::List => {
            let v = c.call::<methods::StatusList>(NoParams {}).await?;
            print_stories(out, &v);
        }
        StatusCmd::View { name } => {
            let v = c
                .call::<methods::StatusView>(methods::StatusViewParams { name })
                .await?;
            print_stories(out, &v);
        }
        StatusCmd::Delete { id } => {
            let v = c
                .call::<methods::StatusDelete>(methods::StatusDeleteParams { id })
                .await?;
            if out.json {
                json_line(&v);
            } else {
                line("deleted");
            }
        }
        StatusCmd::Privacy { mode, people } => {
            let v = c
                .call::<methods::StatusPrivacySet>(methods::StatusPrivacyParams { mode, people })
                .await?;
            if out.json {
                json_line(&v);
            } else if v.people.is_empty() {
                line(&format!("status updates go to: {}", v.mode));
            } else {
                let names: Vec<String> = v.people.iter().map(|p| printable(p).into()).collect();
                line(&format!(
                    "status updates go to: {} {}",
                    v.mode,
                    names.join(", ")
                ));
            }
        }
    }
    Ok(())
}

fn print_stories(out: &Out, list: &[StoryView]) {
    if out.json {
        for s in list {
            json_line(s);
        }
        return;
    }
    if list.is_empty() {
        line("no status updates");
    }
    for s in list {
        let mark = if s.mine || s.viewed { ' ' } else { '*' };
        line(&format!(
            "{mark} {}  {}  {}  (until {})",
            s.id,
            printable(&s.from),
            local(s.posted_at),
            local(s.expires_at)
        ));
        if !s.text.is_empty() {
            line(&format!("    {}", printable(&s.text)));
        }
        if let Some(p) = &s.photo {
            let save = if p.state == "ready" {
                format!(" (`kith save {}` writes it out)", s.id)
            } else {
                String::new()
            };
            line(&format!(
                "    photo {} ({} bytes): {}{save}",
                printable(&p.name),
                p.size,
                p.state,
            ));
        }
        if s.mine {
            let names: Vec<String> = s
                .viewers
                .iter()
                .map(|(n, _)| printable(n).into_owned())
                .collect();
            line(&format!(
                "    seen by {} of {}{}{}",
                s.viewers.len(),
                s.audience,
                if names.is_empty() { "" } else { ": " },
                names.join(", ")
            ));
        }
    }
}

/// The `kith watch` line of a story event.
pub(crate) fn event_line(ev: &Value) -> String {
    let get = |k: &str| printable(ev.get(k).and_then(Value::as_str).unwrap_or("")).into_owned();
    match ev.get("event").and_then(Value::as_str) {
        Some("story_viewed") => format!("{} viewed your status {}", get("by"), get("id")),
        _ if ev.get("deleted").and_then(Value::as_bool) == Some(true) => {
            format!("{} took back status {}", get("from"), get("id"))
        }
        _ => format!("{} posted a status update {}", get("from"), get("id")),
    }
}
