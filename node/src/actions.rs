//! The message-action commands (`kith react`, `edit`, `delete`, `forward`, `star`, `pin`,
//! `archive`, `mute`, `disappear`): each one call of the engine's command of that name.

use kith_api::methods::{self, ChatSetParams};
use kith_api::{Client, ClientError};

use crate::args::Command;
use crate::cli::chat_params;
use crate::output::Out;

/// Runs one message-action command.
pub(crate) async fn run(out: &Out, c: &mut Client, cmd: Command) -> Result<(), ClientError> {
    let set = |name: Option<String>, group: Option<String>| ChatSetParams {
        chat: chat_params(name, group),
        archived: None,
        muted: None,
        disappear: None,
    };
    match cmd {
        Command::React { id, emoji, remove } => {
            let emoji = if remove {
                String::new()
            } else {
                emoji.unwrap_or_default()
            };
            let v = c
                .call::<methods::MessageReact>(methods::ReactParams { id, emoji })
                .await?;
            out.action(&v);
        }
        Command::Edit { id, text } => {
            let v = c
                .call::<methods::MessageEdit>(methods::EditParams { id, text })
                .await?;
            out.action(&v);
        }
        Command::Delete { id, everyone } => {
            let v = c
                .call::<methods::MessageDelete>(methods::DeleteParams { id, everyone })
                .await?;
            out.action(&v);
        }
        Command::Forward { id, name, group } => {
            let v = c
                .call::<methods::MessageForward>(methods::ForwardParams {
                    id,
                    chat: chat_params(name, group),
                })
                .await?;
            out.sent(&v);
        }
        Command::Star { id, off } => {
            let v = c
                .call::<methods::MessageMark>(methods::MarkParams {
                    id,
                    mark: "star".into(),
                    on: !off,
                })
                .await?;
            out.action(&v);
        }
        Command::Pin { id, off } => {
            let v = c
                .call::<methods::MessageMark>(methods::MarkParams {
                    id,
                    mark: "pin".into(),
                    on: !off,
                })
                .await?;
            out.action(&v);
        }
        Command::Archive { name, group, off } => {
            let mut p = set(name, group);
            p.archived = Some(!off);
            out.chat_settings(&c.call::<methods::ChatSet>(p).await?);
        }
        Command::Mute { name, group, off } => {
            let mut p = set(name, group);
            p.muted = Some(!off);
            out.chat_settings(&c.call::<methods::ChatSet>(p).await?);
        }
        Command::Disappear { group, name, timer } => {
            // `check` (cli.rs) refused the other combinations before the daemon was asked.
            let (mut p, timer) = match (group, timer) {
                (Some(g), None) => (set(None, Some(g)), name),
                (None, Some(t)) => (set(Some(name), None), t),
                _ => return Ok(()),
            };
            p.disappear = Some(timer);
            out.chat_settings(&c.call::<methods::ChatSet>(p).await?);
        }
        Command::Search {
            text,
            chat,
            group,
            limit,
            mentions,
        } => {
            let hits = c
                .call::<methods::Search>(methods::SearchParams {
                    text,
                    chat: chat_params(chat, group),
                    limit,
                    mentions,
                })
                .await?;
            out.search(&hits);
        }
        Command::Mentions { limit } => {
            let v = c
                .call::<methods::Mentions>(methods::MentionsParams { limit })
                .await?;
            mentions(out, &v);
        }
        _ => {}
    }
    Ok(())
}

/// Prints `kith mentions`.
fn mentions(out: &Out, v: &[methods::MentionView]) {
    if out.json {
        for m in v {
            crate::output::json_line(m);
        }
        return;
    }
    if v.is_empty() {
        crate::output::line("No mentions.");
    }
    for m in v {
        crate::output::line(&format!(
            "[{}] {} {} in {}: {}",
            crate::output::local(m.sent_at),
            m.id,
            crate::safe::printable(&m.from),
            crate::safe::printable(&m.group),
            crate::safe::printable(&m.text)
        ));
    }
}
