//! TURN servers learnt from our mailboxes, for calls' relay candidates.
//!
//! Data flow:
//!
//! 1. A registration with a mailbox is accepted (on every connection): we ask it for TURN
//!    credentials ([`State::ask_turn`], `Request::TurnCredentials`). A mailbox whose
//!    operator runs no TURN server answers with an empty list; an older one refuses.
//! 2. The answer ([`State::on_turn_servers`]) is checked (bounds, URL schemes) and kept per
//!    mailbox, in memory only: the credentials are short-lived and asked for again on the
//!    next connection.
//! 3. Every tick ([`State::turn_tick`]), credentials in their last quarter are asked for
//!    again (at most once a minute per mailbox).
//! 4. A call's media task gets the servers whose credentials still hold when it starts
//!    (`CallState::ice_servers`).

use kith_calls::IceServer;
use kith_proto::wire::{MAX_TURN_SERVERS, TurnServer};

use super::*;

/// How often one mailbox is asked for TURN credentials at most.
const ASK_EVERY: Duration = Duration::from_secs(60);

/// The TURN servers of our mailboxes.
#[derive(Debug, Default)]
pub(super) struct TurnServers {
    /// Per mailbox: its servers and when we got them (Unix seconds). At most one entry per
    /// mailbox of ours (`MAX_MAILBOXES`).
    by_mailbox: HashMap<PeerId, (Vec<TurnServer>, u64)>,
    /// When each mailbox was last asked.
    asked: HashMap<PeerId, Instant>,
}

impl TurnServers {
    /// The servers whose credentials hold at `now_s`, for a media task.
    pub(super) fn ice_servers(&self, now_s: u64) -> Vec<IceServer> {
        self.by_mailbox
            .values()
            .flat_map(|(s, _)| s)
            .filter(|s| s.expires_s > now_s)
            .map(|s| IceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect()
    }

    /// Mailboxes whose credentials are in their last quarter at `now_s`.
    fn due(&self, now_s: u64) -> Vec<PeerId> {
        self.by_mailbox
            .iter()
            .filter(|(_, (servers, got))| {
                servers.iter().any(|s| {
                    let life = s.expires_s.saturating_sub(*got);
                    now_s.saturating_add(life / 4) >= s.expires_s
                })
            })
            .map(|(p, _)| *p)
            .collect()
    }
}

impl State {
    /// Asks one of our mailboxes for TURN credentials (at most once per [`ASK_EVERY`]).
    pub(super) fn ask_turn(&mut self, mailbox: &MailboxRef) {
        let Ok(peer) = PeerId::from_bytes(&mailbox.peer_id) else {
            return;
        };
        let now = Instant::now();
        let turn = &mut self.calls.turn;
        if turn
            .asked
            .get(&peer)
            .is_some_and(|t| now.saturating_duration_since(*t) < ASK_EVERY)
        {
            return;
        }
        let mine: HashSet<PeerId> = self
            .my_mailboxes
            .iter()
            .filter_map(|m| PeerId::from_bytes(&m.peer_id).ok())
            .collect();
        turn.asked.retain(|p, _| mine.contains(p) || *p == peer);
        turn.asked.insert(peer, now);
        let pending = Pending::Turn {
            mailbox: mailbox.peer_id.clone(),
        };
        let addrs = (mailbox.peer_id.clone(), mailbox.addrs.clone());
        if self
            .request_mailbox(addrs, Request::TurnCredentials, pending)
            .is_err()
        {
            debug!("cannot ask a mailbox for TURN credentials now");
        }
    }

    /// A mailbox answered [`Request::TurnCredentials`].
    pub(super) fn on_turn_servers(&mut self, mailbox: &[u8], resp: Response) {
        let Ok(peer) = PeerId::from_bytes(mailbox) else {
            return;
        };
        if !self.my_mailboxes.iter().any(|m| m.peer_id == mailbox) {
            return;
        }
        let servers = match resp {
            Response::TurnServers { servers } => servers,
            other => {
                debug!(?other, "the mailbox gave no TURN credentials");
                return;
            }
        };
        let now_s = now_ms() / 1000;
        let good: Vec<TurnServer> = servers
            .into_iter()
            .take(MAX_TURN_SERVERS)
            .filter(|s| s.check().is_ok() && s.expires_s > now_s)
            .collect();
        debug!(servers = good.len(), "TURN servers from a mailbox");
        let turn = &mut self.calls.turn;
        if good.is_empty() {
            turn.by_mailbox.remove(&peer);
        } else {
            turn.by_mailbox.insert(peer, (good, now_s));
        }
        let mine: HashSet<PeerId> = self
            .my_mailboxes
            .iter()
            .filter_map(|m| PeerId::from_bytes(&m.peer_id).ok())
            .collect();
        turn.by_mailbox.retain(|p, _| mine.contains(p));
    }

    /// Asks again for credentials near their end.
    pub(super) fn turn_tick(&mut self) {
        let due = self.calls.turn.due(now_ms() / 1000);
        for peer in due {
            let bytes = peer.to_bytes();
            if let Some(m) = self.my_mailboxes.iter().find(|m| m.peer_id == bytes) {
                let m = m.clone();
                self.ask_turn(&m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(expires_s: u64) -> TurnServer {
        TurnServer {
            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            username: format!("{expires_s}:me"),
            credential: "c".into(),
            expires_s,
        }
    }

    #[test]
    fn expired_servers_are_not_used_and_old_ones_are_due() {
        let mut t = TurnServers::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        t.by_mailbox.insert(a, (vec![server(1_400)], 1_000));
        t.by_mailbox.insert(b, (vec![server(2_000)], 1_000));
        assert_eq!(t.ice_servers(1_000).len(), 2);
        assert_eq!(t.ice_servers(1_500).len(), 1);
        assert!(t.due(1_000).is_empty());
        // a's life is 400 s: due in its last 100.
        assert_eq!(t.due(1_300), vec![a]);
        assert!(!format!("{:?}", t.ice_servers(1_000)).contains("\"c\""));
    }
}
