//! Group typing in the full-screen chat: a `group_typing` event shows "Ada is typing…" in
//! the group's line of the chat list and in its conversation header, for as long as a
//! contact's typing shows ([`TYPING_SHOWN_MS`]), until the member stops or a message comes.

use serde_json::Value;

use super::app::{App, ChatKey, TYPING_SHOWN_MS};

impl App {
    /// A `group_typing` event from the daemon.
    pub(super) fn group_typing(&mut self, ev: &Value) {
        let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
        let (member, state) = (s("member"), s("state"));
        let key = ChatKey::Group(s("group_id").to_string());
        let until = self.now + TYPING_SHOWN_MS;
        let Some(c) = self.chats.iter_mut().find(|c| c.key == key) else {
            return;
        };
        let says = |what: &str| format!("{member} is {what}");
        match state {
            "stopped" => {
                // Only this member's indicator goes (another may have typed since).
                let theirs = ["typing", "recording"].map(says);
                if c.typing.as_ref().is_some_and(|(t, _)| theirs.contains(t)) {
                    c.typing = None;
                }
            }
            "typing" | "recording" => c.typing = Some((says(state), until)),
            _ => {}
        }
    }
}
