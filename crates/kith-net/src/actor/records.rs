//! User records in the DHT (Kademlia, `/kith/kad/1`).
//!
//! - **Stored here**: a record a peer puts to us is kept only when it is valid
//!   ([`valid_record`]: right key, valid signatures, in date) and newer than the one we
//!   hold; an invalid one counts a strike against the sender. A peer may put
//!   [`crate::NetLimits::dht_puts_per_hour`] records; more are dropped ([`crate::limits`]).
//! - **Published**: a tagged publication's outcome (stored by at least one peer, or not)
//!   goes to the engine.
//! - **Looked up**: each step of a lookup may bring a record; invalid ones count against
//!   the peer that gave them, and the newest valid one goes to the engine when the query
//!   ends. An observer hears of every lookup when it ends, with the requests and time until
//!   the first valid record ([`crate::Lookup`]); a probe
//!   ([`crate::NetCommand::ProbeRecord`]) is for the observer only.
//! - **Ended at the first valid record**: Kademlia's record query goes on until the
//!   replication factor's 20 closest peers have answered, which at a thousand nodes with
//!   churn took seconds after the record had come (p50 3.6 s to the end against 414 ms to
//!   the record at 200 nodes). A user record is signed and dated, and the peers closest to
//!   its key hold the latest publication, so the first valid one is the answer: the query
//!   is finished there ([`kad::QueryMut::finish`]) and the engine hears at once. One held
//!   here already (this node is among the closest to the key) ends it before any request.

use std::time::{Duration, Instant};

use kith_proto::record::{UserRecord, user_record_key};
use kith_types::now_ms;
use libp2p::kad::{self, store::RecordStore};
use tracing::debug;

use super::Actor;
use crate::api::NetEvent;
use crate::limits::Pass;
use crate::observe::Lookup;

/// A lookup in flight.
#[derive(Debug, Default)]
pub(crate) struct RecordQuery {
    /// The engine's tag; `None` for a probe.
    tag: Option<u64>,
    /// The newest valid record found so far: its issue time and encoding.
    best: Option<(u64, Vec<u8>)>,
    /// Requests sent and time taken until the first valid record came.
    first: Option<(u32, Duration)>,
}

/// A user record fit for the DHT: right key, valid signatures, in date.
fn valid_record(rec: &kad::Record) -> Option<UserRecord> {
    let user = UserRecord::decode_valid(&rec.value, now_ms()).ok()?;
    (user_record_key(&user.identity) == rec.key.to_vec()).then_some(user)
}

impl Actor {
    /// Starts a lookup of `key`, answered to the engine with `tag` (or a probe without).
    pub(super) fn get_record(&mut self, tag: Option<u64>, key: &[u8]) {
        let qid = self
            .swarm
            .behaviour_mut()
            .kad
            .get_record(kad::RecordKey::new(&key));
        self.record_queries.insert(
            qid,
            RecordQuery {
                tag,
                ..Default::default()
            },
        );
    }

    /// Counts a DHT record `peer` put here: whether it is over the peer's rate (then it is
    /// dropped, and a peer far over it penalised).
    fn put_refused(&mut self, peer: libp2p::PeerId) -> bool {
        match self.put_gate.pass(peer, Instant::now()) {
            Pass::Serve => false,
            pass => {
                debug!(%peer, "DHT records over the peer's rate; dropped");
                if pass == Pass::Strike {
                    self.penalize(peer, "DHT records far over the rate limit");
                }
                true
            }
        }
    }

    pub(super) async fn on_kad(&mut self, ev: kad::Event) -> Result<(), ()> {
        match ev {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => match valid_record(&record) {
                Some(_) if self.put_refused(source) => {}
                Some(user) => {
                    let store = self.swarm.behaviour_mut().kad.store_mut();
                    let newer = match store.get(&record.key) {
                        Some(old) => UserRecord::decode_valid(&old.value, now_ms())
                            .map(|o| o.issued_ms < user.issued_ms)
                            .unwrap_or(true),
                        None => true,
                    };
                    if newer && let Err(e) = store.put(record) {
                        debug!(error = ?e, "record store full");
                    }
                }
                None => self.penalize(source, "invalid DHT record"),
            },
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::PutRecord(res),
                step,
                ..
            } if step.last => {
                if let Some(tag) = self.put_queries.remove(&id) {
                    self.emit(NetEvent::Published {
                        tag,
                        ok: res.is_ok(),
                    })
                    .await?;
                }
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetRecord(res),
                step,
                stats,
            } => {
                if !self.record_queries.contains_key(&id) {
                    return Ok(());
                }
                let mut found = None;
                if let Ok(kad::GetRecordOk::FoundRecord(peer_rec)) = res {
                    match valid_record(&peer_rec.record) {
                        Some(user) => found = Some((user.issued_ms, peer_rec.record.value)),
                        None => {
                            if let Some(p) = peer_rec.peer {
                                self.penalize(p, "invalid DHT record");
                            }
                        }
                    }
                }
                let so_far = (stats.num_requests(), stats.duration().unwrap_or_default());
                if let Some(q) = self.record_queries.get_mut(&id)
                    && let Some((issued, value)) = found
                {
                    q.first.get_or_insert(so_far);
                    if q.best.as_ref().is_none_or(|(t, _)| *t < issued) {
                        q.best = Some((issued, value));
                    }
                    if !step.last
                        && let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id)
                    {
                        // Kademlia reports the end as a last step of its own.
                        query.finish();
                    }
                }
                if step.last
                    && let Some(q) = self.record_queries.remove(&id)
                {
                    if let Some(o) = &self.observer {
                        let (requests, time) = q.first.unwrap_or(so_far);
                        o.lookup_done(&Lookup {
                            probe: q.tag.is_none(),
                            found: q.first.is_some(),
                            requests,
                            time,
                            time_to_end: so_far.1,
                            requests_to_end: so_far.0,
                        });
                    }
                    if let Some(tag) = q.tag {
                        self.emit(NetEvent::Record {
                            tag,
                            value: q.best.map(|(_, v)| v),
                        })
                        .await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
