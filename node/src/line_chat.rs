//! `kith chat NAME`: the line-mode chat screen (for scripts and plain terminals; `kith`
//! alone opens the full-screen app). It shows the last messages, marks the chat read, sends
//! each line typed and prints what arrives from that contact.

use kith_api::methods::{self, HistoryParams, SendParams, WithContact};
use kith_api::{Client, ClientError, SOCKET_NAME};

use crate::output::Out;

/// Runs the line-mode chat with `name` until `/quit` or the end of input.
pub(crate) async fn run(
    out: &Out,
    dir: &std::path::Path,
    mut c: Client,
    name: String,
) -> Result<(), ClientError> {
    use tokio::io::AsyncBufReadExt;
    let mut events = Client::connect(&dir.join(SOCKET_NAME)).await?;
    events.watch().await?;
    let history = c
        .call::<methods::History>(HistoryParams {
            with: name.clone(),
            limit: 20,
        })
        .await?;
    out.history(&history);
    c.call::<methods::Read>(WithContact { with: name.clone() })
        .await?;
    out.note(&format!(
        "-- chatting with {name}; type a message and press Enter, /quit to leave --"
    ));
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = stdin.next_line() => {
                let Ok(Some(line)) = line else { break };
                let text = line.trim_end().to_string();
                if text == "/quit" {
                    break;
                }
                if text.is_empty() {
                    continue;
                }
                let sent = c
                    .call::<methods::Send>(SendParams { to: name.clone(), text })
                    .await?;
                out.note(&format!("  sent {} …", sent.id));
            }
            ev = events.next_event() => {
                let Some(ev) = ev? else { break };
                if ev.get("contact").and_then(|v| v.as_str()) != Some(name.as_str()) {
                    continue;
                }
                out.event(&ev);
                if ev.get("event").and_then(|v| v.as_str()) == Some("message") {
                    // The conversation is on screen: what arrives is read.
                    c.call::<methods::Read>(WithContact { with: name.clone() }).await?;
                }
            }
        }
    }
    Ok(())
}
