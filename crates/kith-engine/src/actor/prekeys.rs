//! The fallback pre-key's schedule (`crate::cores::prekeys`) carried out: rotating and
//! retiring the key in the Olm account, and the guard that keeps a replayed pre-key message
//! from opening a second session from a fallback key.

use super::*;
use crate::cores::prekeys::{self as rules, Admit, Fallback, Step};

/// A session opened from a fallback key, to remember: its id and the key.
type FallbackSession = ([u8; 32], [u8; 32]);

/// The meta key of the fallback key's schedule.
const FALLBACK_META: &str = "fallback_schedule";

impl State {
    fn fallback_schedule(&self, w: &WriteTx<'_>) -> Result<Option<Fallback>, Fatal> {
        Ok(w.meta(FALLBACK_META)?
            .and_then(|b| kith_proto::codec::decode::<Fallback>(&b, 256).ok()))
    }

    fn put_fallback_schedule(&self, w: &mut WriteTx<'_>, f: &Fallback) -> Result<(), Fatal> {
        w.set_meta(FALLBACK_META, &kith_proto::codec::encode(f)?)?;
        Ok(())
    }

    /// Does what the schedule says at `now`; whether the published key changed (the record
    /// must be published again).
    pub(super) fn fallback_step(&mut self, w: &mut WriteTx<'_>, now: u64) -> Result<bool, Fatal> {
        let schedule = self.fallback_schedule(w)?;
        match rules::step(schedule.as_ref(), now) {
            Step::Keep => Ok(false),
            Step::Start(f) => {
                self.put_fallback_schedule(w, &f)?;
                Ok(false)
            }
            Step::Rotate => {
                let old = self.device.fallback_key();
                self.device.rotate_fallback();
                w.set_meta("account", self.device.pickle(&self.keys.storage).as_bytes())?;
                self.put_fallback_schedule(w, &rules::rotated(old, now))?;
                info!("fallback pre-key replaced");
                Ok(true)
            }
            Step::Retire(key) => {
                self.device.retire_previous_fallback();
                w.set_meta("account", self.device.pickle(&self.keys.storage).as_bytes())?;
                let forgotten = w.forget_prekey_sessions(&key)?;
                if let Some(f) = schedule {
                    self.put_fallback_schedule(w, &rules::retired(f))?;
                }
                debug!(forgotten, "previous fallback pre-key retired");
                Ok(false)
            }
        }
    }

    /// For a pre-key envelope that would open a new session (`sessions` holds none of it):
    /// whether it may, when it is on one of our fallback keys (current or previous). Returns
    /// the session to remember once it opened, or the answer when it is refused.
    pub(super) fn admit_prekey(
        &self,
        w: &WriteTx<'_>,
        sessions: &PeerSessions,
        env: &Envelope,
    ) -> Result<Result<Option<FallbackSession>, DeliveryResult>, Fatal> {
        let Some((id, key)) = PeerSessions::prekey_session(env) else {
            return Ok(Ok(None));
        };
        if sessions.holds_session_of(env) {
            return Ok(Ok(None));
        }
        let previous = self.fallback_schedule(w)?.and_then(|f| f.previous);
        let on_fallback =
            self.device.fallback_key() == Some(key) || previous.is_some_and(|(k, _)| k == key);
        if !on_fallback {
            // A one-time key: vodozemac removes it once used, so a replay cannot open.
            return Ok(Ok(None));
        }
        match rules::admit(w.prekey_session_seen(&id)?, w.prekey_sessions()?) {
            Admit::Open => Ok(Ok(Some((id, key)))),
            Admit::Replay => {
                warn!("replayed pre-key message refused");
                Ok(Err(DeliveryResult::Duplicate))
            }
            Admit::Full => {
                warn!("too many sessions from fallback pre-keys; refusing a new one");
                Ok(Err(DeliveryResult::Rejected(RejectReason::Undecryptable)))
            }
        }
    }
}
