//! Everything the CLI prints: plain text for people, or JSON Lines with `--json`. Results go
//! to stdout, errors to stderr; a closed stdout (`kith watch | head`) is not an error.

use std::io::Write;
use std::path::Path;

use kith_api::methods::ReadResult;
use kith_engine::command::{ActionResult, ChatSettingsView, SearchHitView};
use kith_engine::{
    ContactView, GroupItemView, GroupSummary, GroupView, MailboxView, MessageView, NodeInfo,
    NodeStatus, PrivacyView, ProfileView, PushView, ReceiptsView, Sent, Verification,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::media_out::with_attachment;
use crate::message_lines::message_lines;
use crate::safe::printable;

pub struct Out {
    pub(crate) json: bool,
}

pub(crate) fn line(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}

pub(crate) fn json_line<T: Serialize>(v: &T) {
    match serde_json::to_string(v) {
        Ok(s) => line(&s),
        Err(e) => eprintln!("kith: cannot encode output: {e}"),
    }
}

pub use crate::clock::{local, local_secs};

/// The short form of a group id that `kith groups` shows (enough to name it in commands).
pub fn id_prefix(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The state of one of your group messages: `…` (not out yet), `✓ sent`,
/// `✓ delivered to N/M`, `✓✓ delivered to M/M`, `read by K/M` added once someone read it.
pub fn group_ticks(status: &str, delivered: u32, read: u32, of: u32) -> String {
    if status == "pending" {
        return "…".into();
    }
    if of == 0 || delivered == 0 {
        return "✓ sent".into();
    }
    if read >= of {
        return format!("✓✓ read by {read}/{of}");
    }
    let mut s = if delivered >= of {
        format!("✓✓ delivered to {delivered}/{of}")
    } else {
        format!("✓ delivered to {delivered}/{of}")
    };
    if read > 0 {
        s.push_str(&format!(", read by {read}/{of}"));
    }
    s
}

/// A byte count for people: B, KiB, MiB or GiB.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn ticks(status: &str) -> &'static str {
    match status {
        "pending" => "…",
        "sent" => "✓",
        "delivered" => "✓✓",
        "read" => "✓✓ read",
        _ => "?",
    }
}

pub(crate) use crate::qr::qr;

impl Out {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether output is JSON Lines.
    pub fn json(&self) -> bool {
        self.json
    }

    /// One JSON line.
    pub fn json_value<T: Serialize>(&self, v: &T) {
        json_line(v);
    }

    /// One line of text.
    pub fn text(&self, s: &str) {
        line(s);
    }

    pub fn error(&self, msg: &str) {
        if self.json {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "{}", json!({ "error": msg }));
        } else {
            eprintln!("kith: {}", printable(msg));
        }
    }

    pub fn node_up(&self, info: &NodeInfo, sock: &Path) {
        if self.json {
            json_line(&json!({
                "event": "up",
                "code": info.code,
                "peer_id": info.peer_id,
                "addrs": info.addrs,
                "socket": sock.display().to_string(),
            }));
            return;
        }
        line("Kith node running. Give this contact code to the people you talk to:");
        line("");
        line(&format!("  {}", info.code));
        if let Some(q) = qr(&info.code) {
            line(&q);
        }
        line("Listening on:");
        for a in &info.addrs {
            line(&format!("  {a}"));
        }
        line("Press Ctrl-C to stop.");
    }

    pub fn id(&self, info: &NodeInfo) {
        if self.json {
            json_line(&json!({
                "code": info.code,
                "peer_id": info.peer_id,
                "addrs": info.addrs,
                "identity": info.identity,
            }));
            return;
        }
        line(&info.code);
        if let Some(q) = qr(&info.code) {
            line(&q);
        }
        line(&format!("peer id:  {}", info.peer_id));
        line(&format!("identity: {}", info.identity));
        for a in &info.addrs {
            line(&format!("address:  {a}"));
        }
    }

    /// `kith up --detach` started the node.
    pub fn detached(&self, pid: u32, sock: &Path, log: &Path) {
        if self.json {
            json_line(&json!({ "pid": pid, "socket": sock, "log": log }));
        } else {
            line(&format!(
                "kith is running in the background (pid {pid}); log: {}",
                log.display()
            ));
        }
    }

    /// A line for people only (chat screen hints); nothing in JSON mode.
    pub fn note(&self, s: &str) {
        if !self.json {
            line(s);
        }
    }

    pub fn contact_added(&self, c: &ContactView) {
        if self.json {
            json_line(c);
        } else {
            line(&format!("Added {} ({}).", printable(&c.name), c.identity));
        }
    }

    pub fn mailbox_added(&self, m: &MailboxView) {
        if self.json {
            json_line(m);
        } else {
            line(&format!(
                "Registered with mailbox {} (keeps up to {} messages, {} for you).",
                m.peer_id,
                m.quota,
                bytes(m.quota_bytes)
            ));
            line(
                "Your record in the DHT will list it once published, in the background: \
                 `kith status` shows when.",
            );
        }
    }

    pub fn mailboxes(&self, ms: &[MailboxView]) {
        if self.json {
            for m in ms {
                json_line(m);
            }
            return;
        }
        if ms.is_empty() {
            line("No mailboxes. Add one with: kith mailbox add CODE");
        }
        for m in ms {
            if m.updated_at == 0 {
                line(&format!("{}  (quota not known yet)", m.peer_id));
                continue;
            }
            line(&format!(
                "{}  {}/{} messages, {}/{} kept for you (as of {})",
                m.peer_id,
                m.used_messages,
                m.quota,
                bytes(m.used_bytes),
                bytes(m.quota_bytes),
                local(m.updated_at)
            ));
        }
    }

    pub fn push(&self, p: &PushView) {
        if self.json {
            json_line(p);
            return;
        }
        match &p.host {
            Some(host) => line(&format!(
                "Push wake-ups go to {host} (the rest of the URL is secret)."
            )),
            None => line("No push endpoint. Set one with: kith push set URL"),
        }
        if p.mailboxes.is_empty() && p.set {
            line("No mailboxes yet: the endpoint is sent to each one you add.");
        }
        for m in &p.mailboxes {
            line(&format!("  {}  {}", m.peer_id, printable(&m.status)));
        }
    }

    pub fn contact_removed(&self, c: &ContactView) {
        if self.json {
            json_line(c);
        } else {
            line(&format!("Removed {} ({}).", printable(&c.name), c.identity));
        }
    }

    pub fn contacts(&self, cs: &[ContactView]) {
        if self.json {
            for c in cs {
                json_line(c);
            }
            return;
        }
        if cs.is_empty() {
            line("No contacts yet. Add one with: kith contacts add CODE --name NAME");
        }
        for c in cs {
            let mut s = format!(
                "{:<20} {}  {}",
                printable(&c.name),
                c.identity,
                if c.connected { "connected" } else { "" }
            );
            if c.pending > 0 {
                s.push_str(&format!("  ({} waiting)", c.pending));
            }
            if !c.added_by_user {
                s.push_str("  (wrote to you; not added by you)");
            }
            if c.archived {
                s.push_str("  archived");
            }
            if c.muted {
                s.push_str("  muted");
            }
            if c.blocked {
                s.push_str("  blocked");
            } else if let Some(t) = &c.typing {
                s.push_str(&format!("  {}…", printable(t)));
            } else if c.presence == "online" {
                s.push_str("  online");
            } else if let Some(t) = c.last_seen {
                s.push_str(&format!("  last seen {}", local(t)));
            }
            if let Some(n) = c.profile_name.as_ref().filter(|n| !n.is_empty()) {
                s.push_str(&format!("  \"{}\"", printable(n)));
            }
            line(s.trim_end());
            if let Some(a) = c.about.as_ref().filter(|a| !a.is_empty()) {
                line(&format!("{:<20} about: {}", "", printable(a)));
            }
            // Kept sealed at rest: `kith photo NAME --to FILE` writes it out.
            if c.avatar.is_some() {
                line(&format!(
                    "{:<20} photo: yes (kith photo {} --to FILE)",
                    "",
                    printable(&c.name)
                ));
            }
        }
    }

    /// A command that only succeeded.
    pub fn done(&self, what: &str) {
        if self.json {
            json_line(&serde_json::json!({ "ok": true, "state": what }));
        }
    }

    pub fn profile(&self, p: &ProfileView) {
        if self.json {
            json_line(p);
            return;
        }
        if p.version == 0 {
            line(
                "No profile yet. Set one with: kith profile set --name NAME [--about TEXT] [--avatar FILE]",
            );
            return;
        }
        line(&format!("name:  {}", printable(&p.name)));
        line(&format!("about: {}", printable(&p.about)));
        match p.avatar_bytes {
            Some(n) => line(&format!("photo: {}", bytes(n as u64))),
            None => line("photo: none"),
        }
    }

    pub fn privacy(&self, p: &PrivacyView) {
        if self.json {
            json_line(p);
            return;
        }
        line(&format!("last-seen      {}", p.last_seen));
        line(&format!("online         {}", p.online));
        line(&format!("profile-photo  {}", p.profile_photo));
        line(&format!(
            "read-receipts  {}",
            if p.read_receipts { "on" } else { "off" }
        ));
    }

    pub fn blocked(&self, c: &ContactView) {
        if self.json {
            json_line(c);
        } else if c.blocked {
            line(&format!("Blocked {}.", printable(&c.name)));
        } else {
            line(&format!("Unblocked {}.", printable(&c.name)));
        }
    }

    pub fn sent(&self, s: &Sent) {
        if self.json {
            json_line(s);
        } else {
            line(&s.id);
        }
    }

    pub fn history(&self, msgs: &[MessageView]) {
        for m in msgs {
            if self.json {
                json_line(m);
                continue;
            }
            let tail = if m.from == "me" {
                format!("  {}", ticks(&m.status))
            } else {
                String::new()
            };
            let text = with_attachment(&m.text, m.attachment.as_ref());
            message_lines(&m.id, m.sent_at, &m.from, &text, &m.extras, &tail);
        }
    }

    /// What a message action did.
    pub fn action(&self, r: &ActionResult) {
        if self.json {
            json_line(r);
        } else if r.changed {
            line(&format!("Done: {} {}.", r.action.replace('_', " "), r.id));
        } else {
            line(&format!(
                "Nothing to change ({} {}).",
                r.action.replace('_', " "),
                r.id
            ));
        }
    }

    /// Search results, best first.
    pub fn search(&self, hits: &[SearchHitView]) {
        if self.json {
            for h in hits {
                json_line(h);
            }
            return;
        }
        if hits.is_empty() {
            line("No matches.");
        }
        for h in hits {
            line(&format!(
                "[{}] {} {} in {}: {}",
                local(h.sent_at),
                h.id,
                printable(&h.from),
                printable(&h.chat),
                printable(&h.snippet)
            ));
        }
    }

    /// A chat's settings.
    pub fn chat_settings(&self, v: &ChatSettingsView) {
        if self.json {
            json_line(v);
            return;
        }
        line(&format!(
            "{}: archived {}, muted {}, disappearing messages {}",
            printable(&v.chat),
            if v.archived { "yes" } else { "no" },
            if v.muted { "yes" } else { "no" },
            v.disappear
        ));
    }

    pub fn group_created(&self, g: &GroupView) {
        if self.json {
            json_line(g);
            return;
        }
        let others: Vec<_> = g
            .members
            .iter()
            .filter(|m| m.name != "me")
            .map(|m| printable(&m.name))
            .collect();
        let name = printable(&g.name);
        if others.is_empty() {
            line(&format!(
                "Created group {} (id {}); add people with: kith group add {} NAME",
                name,
                id_prefix(&g.id),
                id_prefix(&g.id)
            ));
        } else {
            line(&format!(
                "Created group {} (id {}) with {}.",
                name,
                id_prefix(&g.id),
                others.join(", ")
            ));
        }
    }

    /// A group change went through: `what` for people, the group for programs.
    pub fn group_changed(&self, what: &str, g: &GroupView) {
        if self.json {
            json_line(g);
        } else {
            line(what);
        }
    }

    pub fn group_info(&self, g: &GroupView) {
        if self.json {
            json_line(g);
            return;
        }
        line(&format!("{}  (id {})", printable(&g.name), g.id));
        if !g.description.is_empty() {
            line(&format!("description: {}", printable(&g.description)));
        }
        if !g.active {
            line(
                "You are no longer a member: nothing new reaches you. `kith group delete` forgets it.",
            );
        }
        line(&format!("{} member(s), * = admin:", g.members.len()));
        for m in &g.members {
            line(&format!(
                "  {} {:<20} {}",
                if m.admin { "*" } else { " " },
                printable(&m.name),
                m.identity
            ));
        }
        if g.undecryptable > 0 {
            line(&format!(
                "{} of {} frame(s) held cannot be opened here (sent before you joined or after you left, or their key has not come yet)",
                g.undecryptable, g.frames
            ));
        }
    }

    pub fn groups(&self, gs: &[GroupSummary]) {
        if self.json {
            for g in gs {
                json_line(g);
            }
            return;
        }
        if gs.is_empty() {
            line("No groups yet. Create one with: kith group create NAME --members A,B");
        }
        for g in gs {
            let mut s = format!(
                "{}  {:<24} {:>3} member(s)",
                id_prefix(&g.id),
                printable(&g.name),
                g.members
            );
            if g.admin {
                s.push_str("  admin");
            }
            if !g.active {
                s.push_str("  (left)");
            }
            if g.archived {
                s.push_str("  archived");
            }
            if g.muted {
                s.push_str("  muted");
            }
            if g.unread > 0 {
                s.push_str(&format!("  {} unread", g.unread));
            }
            line(&s);
        }
    }

    pub fn group_history(&self, items: &[GroupItemView]) {
        for m in items {
            if self.json {
                json_line(m);
            } else if m.kind == "event" {
                line(&format!("[{}] — {}", local(m.sent_at), printable(&m.text)));
            } else {
                let tail = if m.from == "me" {
                    format!("  {}", group_ticks(&m.status, m.delivered, m.read, m.of))
                } else {
                    String::new()
                };
                let text = with_attachment(&m.text, m.attachment.as_ref());
                message_lines(&m.id, m.sent_at, &m.from, &text, &m.extras, &tail);
            }
        }
    }

    pub fn receipts(&self, r: &ReceiptsView) {
        if self.json {
            json_line(r);
            return;
        }
        line(&format!(
            "Message {} in {} (to {} member(s)):",
            r.id,
            printable(&r.group),
            r.of
        ));
        for m in &r.members {
            let d = m
                .delivered_at
                .map(|t| format!("delivered {}", local_secs(t)))
                .unwrap_or_else(|| "not delivered".into());
            let rd = m
                .read_at
                .map(|t| format!("read {}", local_secs(t)))
                .unwrap_or_else(|| "not read".into());
            line(&format!("  {:<20} {d}  {rd}", printable(&m.name)));
        }
    }

    pub fn read(&self, r: &ReadResult) {
        if self.json {
            json_line(r);
        } else {
            line(&format!("{} message(s) marked read.", r.marked));
        }
    }

    pub fn verify(&self, v: &Verification) {
        if self.json {
            json_line(v);
            return;
        }
        line(&format!("Safety number with {}:", printable(&v.name)));
        line("");
        let groups: Vec<&str> = v.safety_number.split(' ').collect();
        for row in groups.chunks(4) {
            line(&format!("  {}", row.join(" ")));
        }
        line("");
        line("Compare it with theirs in person or on a call; if they match, no one is in between.");
    }

    pub fn status(&self, s: &NodeStatus) {
        if self.json {
            json_line(s);
            return;
        }
        line(&format!("peer id:   {}", s.peer_id));
        line(&format!("connected: {} peer(s)", s.connected_peers.len()));
        for p in &s.connected_peers {
            line(&format!("  {p}"));
        }
        line(&format!("outbox:    {} item(s) waiting", s.outbox));
        let reach = match s.reachability.as_str() {
            "public" => "public (others can dial this node)",
            "private" => "private (behind NAT or a firewall; reached through relays)",
            _ => "not known yet",
        };
        line(&format!("reachable: {reach}"));
        let record = match s.record.as_str() {
            "published" => "published in the DHT",
            "publishing" => "being published in the DHT (others may still find the old one)",
            "retrying" => "no DHT peer stored it yet; publishing it again soon",
            "not published" => "not published yet",
            _ => "not known",
        };
        line(&format!("record:    {record}"));
        if !s.relays.is_empty() {
            line(&format!("relays:    {}", s.relays.join(", ")));
        }
        if s.relay_reservations > 0 || s.relay_circuits > 0 {
            line(&format!(
                "relaying:  {} slot(s) held for others, {} connection(s) now",
                s.relay_reservations, s.relay_circuits
            ));
        }
        if !s.turn_servers.is_empty() {
            line(&format!("calls via: {}", s.turn_servers.join(", ")));
        }
    }

    pub fn event(&self, ev: &Value) {
        if self.json {
            json_line(ev);
            return;
        }
        // `raw` decides what to print; `get` is what is printed (peers' text, escaped).
        let raw = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
        let get = |k: &str| printable(raw(k));
        match raw("event") {
            "message" => line(&format!("{}: {}", get("contact"), get("text"))),
            "message_changed" => line(&format!(
                "[{}] {} {} {}",
                get("chat"),
                get("from"),
                match raw("change") {
                    "react" => "reacted to",
                    "edit" => "edited",
                    "delete" => "deleted",
                    _ => "changed the disappearing timer",
                },
                get("id")
            )),
            "status" => line(&format!(
                "{} {} {}",
                get("contact"),
                get("id"),
                ticks(raw("status"))
            )),
            "new_contact" => line(&format!(
                "New contact wrote to you: {} (identity {})",
                get("contact"),
                get("identity")
            )),
            "identity_warning" => line(&format!("WARNING {}: {}", get("contact"), get("detail"))),
            "notice" => line(&format!("note: {}", get("detail"))),
            "history" => line(&format!(
                "history from your other device: {} of {} messages ({})",
                ev.get("messages_done").and_then(Value::as_u64).unwrap_or(0),
                ev.get("messages").and_then(Value::as_u64).unwrap_or(0),
                get("state")
            )),
            "presence" => {
                if ev.get("online").and_then(Value::as_bool) == Some(true) {
                    line(&format!("{} is online", get("contact")));
                } else {
                    match ev.get("last_seen").and_then(Value::as_u64) {
                        Some(t) => line(&format!(
                            "{} went offline (last seen {})",
                            get("contact"),
                            local(t)
                        )),
                        None => line(&format!("{} went offline", get("contact"))),
                    }
                }
            }
            "typing" => match raw("state") {
                "stopped" => {}
                _ => line(&format!("{} is {}…", get("contact"), get("state"))),
            },
            "group_typing" => match raw("state") {
                "stopped" => {}
                _ => line(&format!(
                    "[{}] {} is {}…",
                    get("group"),
                    get("member"),
                    get("state")
                )),
            },
            "group_message" => line(&format!(
                "[{}] {}: {}",
                get("group"),
                get("from"),
                get("text")
            )),
            "group_status" => {
                let n = |k: &str| {
                    ev.get(k)
                        .and_then(Value::as_u64)
                        .and_then(|v| u32::try_from(v).ok())
                        .unwrap_or(0)
                };
                line(&format!(
                    "[{}] {} {}",
                    get("group"),
                    get("id"),
                    group_ticks("sent", n("delivered"), n("read"), n("of"))
                ))
            }
            "group_changed" => line(&format!("[{}] {}", get("group"), get("text"))),
            "call" => line(&crate::calls::event_line(ev)),
            "call_quality" => {
                let n = |k: &str| ev.get(k).and_then(Value::as_u64).unwrap_or(0);
                line(&format!(
                    "call quality: rtt {} ms, loss {}‰, jitter {} ms, in {} kbit/s, out {} kbit/s",
                    n("rtt_ms"),
                    n("loss_permille"),
                    n("jitter_ms"),
                    n("recv_kbps"),
                    n("send_kbps")
                ))
            }
            "media" => line(&format!(
                "{} {} {} {} %",
                get("contact"),
                get("id"),
                get("state"),
                ev.get("percent").and_then(Value::as_u64).unwrap_or(0)
            )),
            "story" | "story_viewed" => line(&crate::stories::event_line(ev)),
            "profile" => line(&format!(
                "{} updated their profile: {}",
                get("contact"),
                get("name")
            )),
            _ => line(&printable(&ev.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn group_ticks_show_counts() {
        use super::group_ticks;
        assert_eq!(group_ticks("pending", 0, 0, 2), "…");
        assert_eq!(group_ticks("sent", 0, 0, 2), "✓ sent");
        assert_eq!(group_ticks("sent", 1, 0, 2), "✓ delivered to 1/2");
        assert_eq!(
            group_ticks("delivered", 2, 1, 2),
            "✓✓ delivered to 2/2, read by 1/2"
        );
        assert_eq!(group_ticks("read", 2, 2, 2), "✓✓ read by 2/2");
        // A group of one: nothing to count.
        assert_eq!(group_ticks("sent", 0, 0, 0), "✓ sent");
    }
}
