//! The engine's commands ([`NetCommand`]), each turned into calls on the swarms, and the
//! group gossip the swarm delivers (handed to the engine to validate).

use libp2p::{gossipsub, kad};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Actor;
use crate::api::{GossipId, NetCommand, NetEvent, RequestFailure, Verdict};
use crate::swarm::REQUEST_TIMEOUT;

impl Actor {
    pub(super) fn on_command(&mut self, cmd: NetCommand) {
        // A link the engine uses is not idle (and it is worth knowing when one must be made).
        let to = match &cmd {
            NetCommand::Request { peer, .. } => Some((peer, "request")),
            NetCommand::Signal { peer, .. } => Some((peer, "signal")),
            NetCommand::Media { peer, .. } => Some((peer, "media")),
            NetCommand::Dial { peer, .. } => Some((peer, "dial")),
            _ => None,
        };
        if let Some((peer, what)) = to {
            self.idle.touch(peer);
            debug!(%peer, what, connected = self.swarm.is_connected(peer), "engine asks");
        }
        match cmd {
            NetCommand::Request {
                tag,
                peer,
                addrs,
                req,
            } => {
                let id = self.swarm.behaviour_mut().msg.send_request_with_addresses(
                    &peer,
                    Ok(req),
                    addrs,
                );
                self.outbound.insert(id, tag);
            }
            NetCommand::Deposit {
                tag,
                peer,
                addrs,
                req,
            } => {
                // A fresh identity for every deposit ([`crate::anon`]).
                let started = self.anon.start(
                    REQUEST_TIMEOUT,
                    self.transport.as_ref(),
                    tag,
                    peer,
                    addrs,
                    req,
                );
                if let Err(e) = started {
                    warn!(error = %e, "cannot start a deposit");
                    let failed = NetEvent::Response {
                        tag,
                        peer,
                        result: Err(RequestFailure::Timeout),
                    };
                    if self.events.try_send(failed).is_err() {
                        debug!("engine busy; deposit failure dropped");
                    }
                }
            }
            NetCommand::Respond { id, resp } => {
                if let Some(ch) = self.pending_inbound.remove(&id) {
                    let _ = self.swarm.behaviour_mut().msg.send_response(ch, resp);
                }
            }
            NetCommand::Dial { peer, addrs } => self.dial(peer, addrs),
            NetCommand::PutRecord { key, value, tag } => {
                let rec = kad::Record::new(key, value);
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(rec, kad::Quorum::One)
                {
                    Ok(qid) => {
                        if let Some(tag) = tag {
                            self.put_queries.insert(qid, tag);
                        }
                    }
                    Err(e) => {
                        warn!(error = ?e, "cannot store own record");
                        if let Some(tag) = tag
                            && self
                                .events
                                .try_send(NetEvent::Published { tag, ok: false })
                                .is_err()
                        {
                            debug!("engine busy; record outcome dropped");
                        }
                    }
                }
            }
            NetCommand::GetRecord { tag, key } => {
                debug!(tag, "record lookup asked");
                self.get_record(Some(tag), &key);
            }
            NetCommand::ProbeRecord { key } => self.get_record(None, &key),
            NetCommand::Penalize { peer, reason } => self.penalize(peer, reason),
            NetCommand::Vouch { peer } => self.request_gate.vouch(peer, std::time::Instant::now()),
            NetCommand::Signal { tag, peer, signal } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .signal
                    .send_request(&peer, Ok(signal));
                if let Some(tag) = tag {
                    self.signal_out.insert(id, tag);
                }
            }
            NetCommand::Keep { peers } => {
                for p in &peers {
                    self.idle.touch(p);
                }
            }
            NetCommand::Media {
                tag,
                peer,
                addrs,
                req,
            } => self.ask_media(tag, peer, addrs, req),
            NetCommand::AnswerMedia { id, resp } => self.answer_media(id, resp),
            NetCommand::AnswerSignal { id, answer } => {
                if let Some(ch) = self.signal_in.remove(&id) {
                    let _ = self.swarm.behaviour_mut().signal.send_response(ch, answer);
                }
            }
            NetCommand::Subscribe { topic } => {
                let t = gossipsub::IdentTopic::new(topic);
                let g = &mut self.swarm.behaviour_mut().gossip;
                if let Err(e) = g.subscribe(&t) {
                    warn!(error = ?e, "cannot join a group topic");
                }
                let _ = g.set_topic_params(t, crate::gossip::topic_params());
            }
            NetCommand::Unsubscribe { topic } => {
                let t = gossipsub::IdentTopic::new(topic);
                self.swarm.behaviour_mut().gossip.unsubscribe(&t);
            }
            NetCommand::Publish { tag, topic, data } => {
                let t = gossipsub::IdentTopic::new(topic);
                if let Some(o) = &self.observer {
                    o.gossip_published();
                }
                let result = match self.swarm.behaviour_mut().gossip.publish(t, data) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(crate::api::PublishFailure(e)),
                };
                if self
                    .events
                    .try_send(NetEvent::GossipSent { tag, result })
                    .is_err()
                {
                    debug!("engine busy; publish outcome dropped");
                }
            }
            NetCommand::Validated {
                id,
                source,
                verdict,
            } => {
                let acceptance = match verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                    Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                };
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&id.0, &source, acceptance);
            }
        }
    }

    pub(super) fn on_gossip(&mut self, ev: gossipsub::Event) -> Result<(), ()> {
        match ev {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                if let Some(o) = &self.observer {
                    o.gossip_new();
                }
                let ev = NetEvent::Gossip {
                    id: GossipId(message_id.clone()),
                    source: propagation_source,
                    author: message.source,
                    topic: message.topic.into_string(),
                    data: message.data,
                };
                // Never wait on the engine for gossip: if it is busy, the message is not
                // forwarded from here and members fetch it later (groups sync).
                if let Err(e) = self.events.try_send(ev) {
                    if matches!(e, mpsc::error::TrySendError::Closed(_)) {
                        return Err(());
                    }
                    self.swarm
                        .behaviour_mut()
                        .gossip
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            gossipsub::MessageAcceptance::Ignore,
                        );
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                let _ = self.events.try_send(NetEvent::GossipJoined {
                    peer: peer_id,
                    topic: topic.into_string(),
                });
            }
            _ => {}
        }
        Ok(())
    }
}
