//! A group scenario's file format ([`GroupScenario`]) and its report ([`GroupReport`]).

use serde::{Deserialize, Serialize};

use super::media::{MediaPlan, MediaReport};
use crate::{Links, ScenarioError};

/// A group scenario; read from a TOML file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupScenario {
    /// A name for the report.
    pub name: String,
    /// Every random choice comes from this.
    pub seed: u64,
    /// Members, the creator (node 0, also everyone's DHT bootstrap) included.
    pub members: usize,
    /// How many members send (the creator and the next ones).
    pub senders: usize,
    /// Messages in all, each from a random sender.
    pub messages: usize,
    /// Sends are spread evenly over this many milliseconds.
    pub send_over_ms: u64,
    /// Share of the members that do not send which go offline once and come back.
    #[serde(default)]
    pub churn: f64,
    /// When they go down (ms from the first send, a random time in the range) ...
    #[serde(default)]
    pub down_at_ms: (u64, u64),
    /// ... and for how long.
    #[serde(default)]
    pub down_for_ms: (u64, u64),
    /// After the messages: remove the last member, send this many more from the creator,
    /// and check the removed member shows none of them (0: skip).
    #[serde(default)]
    pub after_removal: usize,
    /// How long to wait for everything to arrive after the last send.
    pub settle_ms: u64,
    /// How long the group may take to reach every member before messages start.
    #[serde(default = "default_setup")]
    pub setup_ms: u64,
    /// How every link behaves (latency, jitter, loss, bandwidth); instant when absent.
    #[serde(default)]
    pub links: Option<Links>,
    /// Each sender sends one message first, and the run waits until every member has them
    /// all (sessions set up) before the measured messages.
    #[serde(default)]
    pub warmup: bool,
    /// Members' stores commit without fsync (`EngineConfig::store_fsync` off): with
    /// hundreds of members on one disk, each member's commits otherwise wait behind all the
    /// others' fsyncs, which a member on its own device never does.
    #[serde(default)]
    pub skip_fsync: bool,
    /// Members join over time, as people do, instead of all at the group's creation.
    #[serde(default)]
    pub join: Option<JoinPlan>,
    /// After the set-up (and warm-up), the creator posts a file every member fetches.
    #[serde(default)]
    pub media: Option<MediaPlan>,
}

/// How members join: the creator makes the group with the first `initial` members (the
/// senders among them), then adds the others `wave` at a time every `every_ms`. A share
/// `offline` of the members who do not send are offline when they are added (they added
/// the creator as a contact earlier, then went away) and come online `offline_for_ms`
/// after their addition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinPlan {
    /// Members in the group when it is made, the creator included.
    pub initial: usize,
    /// Members added per wave after that.
    pub wave: usize,
    /// Time between waves (the first wave comes this long after the creation).
    pub every_ms: u64,
    /// Share of the members that do not send who are offline when added.
    #[serde(default)]
    pub offline: f64,
    /// How long after being added they come online (a random time in the range).
    #[serde(default)]
    pub offline_for_ms: (u64, u64),
}

impl JoinPlan {
    /// When each member is added, ms after the group's creation (0: at the creation);
    /// member 0 (the creator) included.
    pub fn added_at_ms(&self, members: usize) -> Vec<u64> {
        (0..members)
            .map(|i| {
                if i < self.initial {
                    0
                } else {
                    ((i - self.initial) / self.wave.max(1) + 1) as u64 * self.every_ms
                }
            })
            .collect()
    }
}

fn default_setup() -> u64 {
    120_000
}

impl GroupScenario {
    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let s: GroupScenario =
            toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_string()));
        if s.members < 3 || s.members > kith_engine::MAX_GROUP_MEMBERS {
            return bad("members must be 3 to 1024");
        }
        if s.senders == 0 || s.senders >= s.members {
            return bad("senders must be 1 to members - 1");
        }
        if s.messages == 0 || s.messages > 100_000 {
            return bad("messages must be 1 to 100,000");
        }
        if !(0.0..=1.0).contains(&s.churn)
            || s.down_at_ms.0 > s.down_at_ms.1
            || s.down_for_ms.0 > s.down_for_ms.1
        {
            return bad("churn is a share (0 to 1); ranges are (low, high)");
        }
        if let Some(j) = &s.join
            && (j.initial <= s.senders
                || j.initial > s.members
                || j.wave == 0
                || !(0.0..=1.0).contains(&j.offline)
                || j.offline_for_ms.0 > j.offline_for_ms.1)
        {
            return bad(
                "join: initial must hold the senders and one more (at most members), wave >= 1, \
                 offline a share, offline_for_ms (low, high)",
            );
        }
        if let Some(m) = &s.media
            && (m.bytes == 0 || m.bytes > 256 << 20)
        {
            return bad("media: bytes must be 1 to 256 MiB");
        }
        Ok(s)
    }
}

/// What a group run showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// The scenario's name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Members.
    pub members: usize,
    /// Messages sent.
    pub sent: usize,
    /// (member, message) pairs that should be shown: every message at every other member.
    pub expected: usize,
    /// Of those, shown.
    pub delivered: usize,
    /// Shown more than once.
    pub duplicates: usize,
    /// Messages shown out of their sender's order.
    pub out_of_order: usize,
    /// Every member computed the same membership (and name).
    pub states_agree: bool,
    /// Member restarts done.
    pub restarts: usize,
    /// Messages sent after the removal that the removed member shows (must be 0).
    pub removed_saw: usize,
    /// Latency from `send` to each member's event, ms: p50, p95, p99, max.
    pub latency_ms: [f64; 4],
    /// Bytes all members sent on their links while the messages flowed (receipts, catch-up,
    /// gossip control and keep-alives included), per member per message sent.
    pub bytes_sent_per_member_per_message: f64,
    /// The same, received.
    pub bytes_received_per_member_per_message: f64,
    /// Copies of gossip messages a member received beyond the first, per member per message
    /// sent, while the messages flowed (all gossip on the group's topic: messages and
    /// membership updates).
    pub duplicates_per_member_per_message: f64,

    /// Members who were offline when added and came online later (a join plan).
    #[serde(default)]
    pub joined_late: usize,
    /// When the last member was added, s after the group's creation (0: all at once).
    #[serde(default)]
    pub last_added_s: f64,
    /// Time for the group to reach every member, s (from the creation, so it includes the
    /// join plan's waves and the offline members' absence).
    pub setup_s: f64,
    /// Time for every sender's first message to reach every member (with `warmup`), s.
    pub warmup_s: f64,
    /// Wall time of the run, s.
    pub wall_s: f64,
    /// CPU time of the process, s.
    pub cpu_s: f64,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// The `[media]` file's run.
    #[serde(default)]
    pub media: Option<MediaReport>,
}

impl GroupReport {
    /// The delivery results only (the same for the same seed in a healthy run).
    pub fn outcome(&self) -> (usize, usize, usize, usize, usize, bool, usize) {
        (
            self.sent,
            self.expected,
            self.delivered,
            self.duplicates,
            self.out_of_order,
            self.states_agree,
            self.removed_saw,
        )
    }

    /// What broke the expectations (empty: it passed).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.delivered < self.expected {
            out.push(format!(
                "{} of {} (member, message) deliveries missing",
                self.expected - self.delivered,
                self.expected
            ));
        }
        if self.duplicates > 0 {
            out.push(format!("{} messages shown twice", self.duplicates));
        }
        if self.out_of_order > 0 {
            out.push(format!(
                "{} messages out of their sender's order",
                self.out_of_order
            ));
        }
        if !self.states_agree {
            out.push("members disagree on the membership".into());
        }
        if self.removed_saw > 0 {
            out.push(format!(
                "the removed member shows {} messages sent after its removal",
                self.removed_saw
            ));
        }
        if let Some(m) = &self.media {
            out.extend(m.failures());
        }
        out
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let media = (self.media.as_ref())
            .map(|m| format!("\n{}", m.text()))
            .unwrap_or_default();
        format!(
            "group scenario {} (seed {}): {} members, {} restarts; group reached everyone in {:.1} s (last added at {:.1} s, {} came online late), first messages from every sender in {:.1} s more\n\
             messages: {} sent, {}/{} member deliveries ({:.2} %), {} duplicates, {} out of order, states agree: {}, removed member saw {}\n\
             latency send → member: p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms\n\
             cost per member per message: {:.0} bytes sent, {:.0} bytes received, {:.2} duplicate copies received\n\
             run: {:.1} s wall, {:.1} s CPU, peak RSS {:.0} MiB{}",
            self.scenario,
            self.seed,
            self.members,
            self.restarts,
            self.setup_s,
            self.last_added_s,
            self.joined_late,
            self.warmup_s,
            self.sent,
            self.delivered,
            self.expected,
            if self.expected > 0 {
                self.delivered as f64 * 100.0 / self.expected as f64
            } else {
                100.0
            },
            self.duplicates,
            self.out_of_order,
            self.states_agree,
            self.removed_saw,
            self.latency_ms[0],
            self.latency_ms[1],
            self.latency_ms[2],
            self.latency_ms[3],
            self.bytes_sent_per_member_per_message,
            self.bytes_received_per_member_per_message,
            self.duplicates_per_member_per_message,
            self.wall_s,
            self.cpu_s,
            self.peak_rss_mib,
            media
        )
    }
}
