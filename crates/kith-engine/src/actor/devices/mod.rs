//! Linked devices: one person's identity on up to [`MAX_LINKED_DEVICES`] devices.
//!
//! - `link`: the link handshake, on the new device (`link.start`, answering
//!   `Request::Link`) and on the approving one (`devices.approve`, `devices.confirm`).
//! - `own`: the person's other devices once linked: the list (meta `own_devices`), the user
//!   record listing them all (pushed to contacts as `DeviceSync::Record`), sent transcripts
//!   and read state sent to the other devices, contacts' records applied (new devices
//!   learned, removed ones dropped), and `devices.remove`.
//!
//! docs/protocol.md ("Linked devices") and docs/threat-model.md ("Linked devices") describe
//! the protocol and what it protects.

use std::time::{Duration, Instant};

use kith_proto::link::{LinkOffer, MAX_DEVICE_NAME, MAX_LINKED_DEVICES};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::*;
use crate::command::LinkView;

mod history;
mod history_in;
mod link;

pub(crate) use history::IN_FLIGHT as HISTORY_IN_FLIGHT;
mod own;
mod state;

/// How long a link code stays valid.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Wrong link attempts a code survives; then it is burnt.
pub(crate) const MAX_CODE_TRIES: u32 = 3;
/// Link approvals (or link requests received) per minute.
pub(crate) const LINKS_PER_MINUTE: u32 = 5;
/// How long an approval waits for the new device and for the person.
const APPROVAL_TIMEOUT: Duration = Duration::from_secs(120);

/// Meta key: the person's other devices ([`OwnDevice`]s).
const OWN_DEVICES: &str = "own_devices";
/// Meta key: this device's name.
const DEVICE_NAME: &str = "device_name";
/// Meta key: peer ids of devices removed from this person's devices.
const OWN_REVOKED: &str = "own_revoked";
/// Meta key prefix, then a contact's identity in hex: the last user record of theirs applied.
const CONTACT_RECORD: &str = "devrec:";
/// Most removed devices remembered (per person).
const MAX_REVOKED: usize = 16;
/// Meta key: the platforms the person's other devices told ([`OwnInfo`]s).
const OWN_INFO: &str = "own_info";

/// What another device of this person said about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnInfo {
    /// Its peer id (encoded).
    pub peer_id: Vec<u8>,
    /// Its platform (`os/arch`).
    pub platform: String,
}

/// This device's platform, as `os/arch`.
pub(crate) fn this_platform() -> String {
    format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH)
}

fn parse_info(bytes: Option<Vec<u8>>) -> Vec<OwnInfo> {
    bytes
        .and_then(|b| kith_proto::codec::decode::<Vec<OwnInfo>>(&b, 16 * 1024).ok())
        .map(|mut v| {
            v.truncate(2 * MAX_LINKED_DEVICES);
            v
        })
        .unwrap_or_default()
}

/// Another device of this person, as this device knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnDevice {
    /// Its peer id (encoded).
    pub peer_id: Vec<u8>,
    /// Its name.
    pub name: String,
    /// When it was linked (ms; 0 when learned from a record).
    pub linked_ms: u64,
}

/// The last user record of a contact's that was applied: its time, the devices it listed
/// and the devices removed from it since (never bound again).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ContactRecord {
    pub issued_ms: u64,
    #[serde(with = "kith_proto::codec::byte_list")]
    pub devices: Vec<Vec<u8>>,
    #[serde(with = "kith_proto::codec::byte_list")]
    pub revoked: Vec<Vec<u8>>,
}

/// The new device's side of a link.
struct Offering {
    secret: [u8; 16],
    key: [u8; 32],
    code: String,
    name: String,
    expires: Instant,
    tries: u32,
    stage: Stage,
}

impl Drop for Offering {
    fn drop(&mut self) {
        self.secret.zeroize();
        self.key.zeroize();
    }
}

enum Stage {
    Waiting,
    Offered {
        approver: PeerId,
        identity: IdentityKey,
        transcript: [u8; 32],
    },
    /// Linked; the transcript of the handshake, for the words (a screen that polls may
    /// see this stage before it saw the words).
    Linked {
        transcript: [u8; 32],
    },
    Failed(String),
}

/// The approving device's side of a link.
struct Approving {
    peer: PeerId,
    key: [u8; 32],
    secret: [u8; 16],
    addrs: Vec<Vec<u8>>,
    hello: Vec<u8>,
    started: Instant,
    stage: Approval,
    reply: Option<Reply<LinkView>>,
    /// Days of history the new device gets.
    history_days: u32,
}

impl Drop for Approving {
    fn drop(&mut self) {
        self.secret.zeroize();
        self.key.zeroize();
    }
}

enum Approval {
    /// Hello sent; waiting for the offer.
    Hello,
    /// Words shown; waiting for the person.
    Confirm {
        offer: Box<LinkOffer>,
        transcript: [u8; 32],
    },
    /// Finish sent; waiting for done.
    Finishing { cert: Box<DeviceCert>, name: String },
}

/// Both sides' link state, and when own devices were last heard from.
#[derive(Default)]
pub(crate) struct Links {
    offering: Option<Offering>,
    approving: Option<Approving>,
    /// Link steps started in the current minute (rate limit), and when it began.
    window: Option<(Instant, u32)>,
    /// When each own device was last heard from (ms); at most [`MAX_LINKED_DEVICES`].
    seen: HashMap<DeviceKey, u64>,
    /// The history being handed to a newly linked device (one at a time; also in the
    /// meta table, so that a restart goes on with it).
    history: Option<history::HistoryJob>,
}

impl Links {
    /// Counts one link step against the per-minute limit; false when over it.
    fn admit(&mut self, now: Instant) -> bool {
        match &mut self.window {
            Some((start, n)) if now.duration_since(*start) < Duration::from_secs(60) => {
                *n += 1;
                *n <= LINKS_PER_MINUTE
            }
            _ => {
                self.window = Some((now, 1));
                true
            }
        }
    }

    /// This device took another identity: it must restart before it acts for it.
    pub(crate) fn relinked(&self) -> bool {
        matches!(
            self.offering.as_ref().map(|o| &o.stage),
            Some(Stage::Linked { .. })
        )
    }

    /// An own device was heard from.
    pub(super) fn seen(&mut self, dev: DeviceKey) {
        if self.seen.len() < 2 * MAX_LINKED_DEVICES || self.seen.contains_key(&dev) {
            self.seen.insert(dev, now_ms());
        }
    }
}

/// A device name as given: trimmed, printable, at most [`MAX_DEVICE_NAME`] bytes.
fn clean_name(name: &str) -> Option<String> {
    let n = name.trim();
    (!n.is_empty() && n.len() <= MAX_DEVICE_NAME && !n.chars().any(char::is_control))
        .then(|| n.to_string())
}

/// The default name of a device: `device-` and the end of its peer id.
fn default_name(peer_id: &[u8]) -> String {
    let text = PeerId::from_bytes(peer_id)
        .map(|p| p.to_string())
        .unwrap_or_default();
    let tail: String = text
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("device-{tail}")
}

fn parse_own(bytes: Option<Vec<u8>>) -> Vec<OwnDevice> {
    bytes
        .and_then(|b| kith_proto::codec::decode::<Vec<OwnDevice>>(&b, 16 * 1024).ok())
        .map(|mut v| {
            v.truncate(MAX_LINKED_DEVICES);
            v
        })
        .unwrap_or_default()
}

fn parse_list(bytes: Option<Vec<u8>>) -> Vec<Vec<u8>> {
    #[derive(Deserialize)]
    struct List(#[serde(with = "kith_proto::codec::byte_list")] Vec<Vec<u8>>);
    bytes
        .and_then(|b| kith_proto::codec::decode::<List>(&b, 16 * 1024).ok())
        .map(|l| l.0)
        .unwrap_or_default()
}

fn encode_list(list: &[Vec<u8>]) -> Result<Vec<u8>, Fatal> {
    #[derive(Serialize)]
    struct List<'a>(#[serde(with = "kith_proto::codec::byte_list")] &'a [Vec<u8>]);
    Ok(kith_proto::codec::encode(&List(list))?)
}

fn contact_record_key(identity: &IdentityKey) -> String {
    format!("{CONTACT_RECORD}{}", hex::encode(identity.as_bytes()))
}

fn parse_contact_record(bytes: Option<Vec<u8>>) -> ContactRecord {
    bytes
        .and_then(|b| kith_proto::codec::decode::<ContactRecord>(&b, 16 * 1024).ok())
        .unwrap_or_default()
}

impl State {
    /// The person's other devices.
    pub(super) fn own_devices(&self, w: &WriteTx<'_>) -> Result<Vec<OwnDevice>, Fatal> {
        Ok(parse_own(w.meta(OWN_DEVICES)?))
    }

    fn put_own_devices(&self, w: &mut WriteTx<'_>, list: &[OwnDevice]) -> Result<(), Fatal> {
        w.set_meta(OWN_DEVICES, &kith_proto::codec::encode(list)?)?;
        Ok(())
    }

    /// This device's name.
    fn my_device_name(&self, name: Option<Vec<u8>>) -> String {
        name.and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| default_name(&self.device.cert().peer_id))
    }

    /// Whether a device of `identity` was removed (by its owner's newer record, or, for this
    /// person, by `devices.remove`): it is never bound again.
    pub(super) fn revoked_device(
        &self,
        w: &WriteTx<'_>,
        identity: &IdentityKey,
        peer_id: &[u8],
    ) -> Result<bool, Fatal> {
        let list = if *identity == self.me {
            parse_list(w.meta(OWN_REVOKED)?)
        } else {
            parse_contact_record(w.meta(&contact_record_key(identity))?).revoked
        };
        Ok(list.iter().any(|p| p == peer_id))
    }
}

impl Engine {
    /// `devices.history`: how far the history from the approving device has come (on a
    /// new device), or how far the walk handing it over is (on the approving one).
    pub(super) fn history_progress(
        &self,
    ) -> Result<crate::command::HistoryProgressView, EngineError> {
        let got = self
            .store
            .read(|r| r.meta(history_in::HISTORY_IN))
            .map_err(internal)?
            .and_then(|b| kith_proto::codec::decode::<history_in::HistoryIn>(&b, 1024).ok());
        if got.is_none()
            && let Some((done, total, walked, messages)) = self.st.history_out()
        {
            return Ok(crate::command::HistoryProgressView {
                state: "sending".into(),
                conversations_done: done,
                conversations: total,
                messages_done: walked,
                messages,
                stored: 0,
            });
        }
        Ok(history_in::progress_view(got))
    }

    /// `devices`: this device and the person's other devices.
    pub(super) fn devices_view(&self) -> Result<Vec<crate::command::DeviceView>, EngineError> {
        let (own, name, info) = self
            .store
            .read(|r| {
                Ok((
                    parse_own(r.meta(OWN_DEVICES)?),
                    r.meta(DEVICE_NAME)?,
                    parse_info(r.meta(OWN_INFO)?),
                ))
            })
            .map_err(internal)?;
        let me = self.st.device.cert();
        let mut out = vec![crate::command::DeviceView {
            name: self.st.my_device_name(name),
            peer_id: PeerId::from_bytes(&me.peer_id)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            this: true,
            online: true,
            linked_ms: None,
            last_seen: Some(now_ms()),
            platform: Some(this_platform()),
        }];
        for d in own {
            let peer = PeerId::from_bytes(&d.peer_id).ok();
            out.push(crate::command::DeviceView {
                name: d.name,
                peer_id: peer.map(|p| p.to_string()).unwrap_or_default(),
                this: false,
                online: peer.is_some_and(|p| self.st.connected.contains(&p)),
                linked_ms: (d.linked_ms > 0).then_some(d.linked_ms),
                last_seen: self.st.links.seen.get(&device_key(&d.peer_id)).copied(),
                platform: info
                    .iter()
                    .find(|i| i.peer_id == d.peer_id)
                    .map(|i| i.platform.clone()),
            });
        }
        Ok(out)
    }

    /// The person's other devices for the user record (those with a certificate).
    pub(super) fn own_record_devices(&self) -> Vec<RecordDevice> {
        self.store
            .read(|r| {
                let mut out = Vec::new();
                for o in parse_own(r.meta(OWN_DEVICES)?) {
                    if let Some(d) = r.device(&device_key(&o.peer_id))?
                        && let Some(cert) = d.cert
                        && cert.identity == self.st.me
                    {
                        out.push(RecordDevice {
                            cert,
                            addrs: d.addrs,
                            mailboxes: d.mailboxes,
                            prekey: d.prekey,
                        });
                    }
                }
                Ok(out)
            })
            .unwrap_or_default()
    }
}
