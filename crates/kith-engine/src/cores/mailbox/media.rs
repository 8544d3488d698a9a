//! The rules by which a mailbox holds media files for its registered devices (no I/O; the
//! engine reads the store, passes what is held in, and carries out the verdict).
//!
//! Anyone may ask a mailbox to hold a file for a device registered there (`Hold`), since
//! the sender of a file is whoever the device chats with. So that such a peer cannot keep
//! the device's media quota taken with files it never fills (and have honest files
//! refused), a held file is charged by what is stored:
//!
//! - A filled file costs its stored bytes; one still filling costs its stored bytes plus a
//!   reservation for what it still lacks, at most [`HOLD_RESERVE`] (so the next chunks of
//!   an honest deposit find room). [`Held::charge`]
//! - A file that is not filled is dropped [`HOLD_IDLE`] after the last chunk it got (or
//!   after the `Hold`); each new chunk puts that off, and a filled file is kept for the
//!   media retention. [`MailboxService::hold_expiry`]
//! - One depositing peer holds at most [`PEER_SHARE`]⁻¹ of a device's media quota (bytes
//!   and files), and at most [`MAX_UNFILLED_PER_PEER`] files still filling for it. A file
//!   larger than that share is refused at once, since it could never be held whole.
//!   [`MailboxService::hold`]
//! - A chunk that would take the device or the file's depositor past its bytes is refused
//!   (`Full`); what is held already stays. [`MailboxService::put`]
//!
//! - A file held whole already (for another device registered here) is granted to one
//!   more device without its chunks coming again (one copy per mailbox node): charged whole
//!   to that device, within its quota and the asking peer's share. [`MailboxService::grant`]
//!
//! A file held before fill records existed counts as filled by nobody in particular.

use std::time::Duration;

use kith_proto::media::{CHUNK, MediaRefusal, TAG};

use super::{DeviceKey, MailboxService, Verdict};

/// How long a file that is not filled is kept after the last chunk it got.
pub const HOLD_IDLE: Duration = Duration::from_secs(10 * 60);
/// Most bytes reserved for a file still filling, beyond what it stored (8 MiB: twice what
/// a depositor has in flight, `media::WINDOW` chunks).
pub const HOLD_RESERVE: u64 = 8 << 20;
/// One depositing peer holds at most a `1 / PEER_SHARE` part of a device's media quota.
pub const PEER_SHARE: u64 = 4;
/// Most files still filling that one depositing peer may have held for one device.
pub const MAX_UNFILLED_PER_PEER: usize = 8;

/// A file held for a device, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held<'a> {
    /// Sealed bytes its depositor announced.
    pub sealed: u64,
    /// Sealed bytes stored.
    pub stored: u64,
    /// Whether every chunk is stored.
    pub filled: bool,
    /// The depositing peer (`None` for a file held before this was recorded).
    pub by: Option<&'a [u8]>,
}

impl Held<'_> {
    /// What the file costs the device's quota: its stored bytes, plus while it fills a
    /// reservation for what it lacks (at most [`HOLD_RESERVE`]).
    pub fn charge(&self) -> u64 {
        if self.filled {
            return self.stored;
        }
        let lacking = self.sealed.saturating_sub(self.stored);
        self.stored.saturating_add(lacking.min(HOLD_RESERVE))
    }
}

/// A device's media limits, from the mailbox's configuration.
#[derive(Debug, Clone, Copy)]
struct Limits {
    bytes: u64,
    files: usize,
    peer_bytes: u64,
    peer_files: usize,
}

/// What one depositor (or everyone) holds for a device: files, files still filling, bytes.
fn usage(kept: &[Held<'_>], by: Option<&[u8]>) -> (usize, usize, u64) {
    let mine = kept.iter().filter(|h| by.is_none() || h.by == by);
    mine.fold((0, 0, 0u64), |(n, unfilled, bytes), h| {
        (
            n + 1,
            unfilled + usize::from(!h.filled),
            bytes.saturating_add(h.charge()),
        )
    })
}

impl MailboxService {
    fn media_limits(&self) -> Option<Limits> {
        let cfg = self.config.as_ref()?;
        let share = usize::try_from(PEER_SHARE).unwrap_or(1);
        Some(Limits {
            bytes: cfg.media_bytes,
            files: cfg.media_files,
            peer_bytes: cfg.media_bytes / PEER_SHARE,
            peer_files: (cfg.media_files / share).max(1),
        })
    }

    /// Decides a file of `sealed` bytes in `chunks` chunks offered by peer `by` for a device
    /// (`Hold`): `to` is the device registered here under the key it names, with what is
    /// held for it already (`None` when the key is not registered here). An accepted file
    /// is held for that device, nothing of it stored yet (see the module's rules).
    pub fn hold(
        &self,
        to: Option<(DeviceKey, &[Held<'_>])>,
        by: &[u8],
        sealed: u64,
        chunks: u32,
    ) -> Verdict<MediaRefusal, DeviceKey> {
        let (Some(lim), Some((dev, kept))) = (self.media_limits(), to) else {
            return Verdict::Refuse(MediaRefusal::Unauthorized);
        };
        let most = u64::from(chunks).saturating_mul((CHUNK + TAG) as u64);
        let least = u64::from(chunks).saturating_mul(TAG as u64 + 1);
        if chunks == 0 || sealed < least || sealed > most {
            return Verdict::Refuse(MediaRefusal::Invalid);
        }
        let new = Held {
            sealed,
            stored: 0,
            filled: false,
            by: Some(by),
        };
        let (files, _, bytes) = usage(kept, None);
        let (peer_files, peer_unfilled, peer_bytes) = usage(kept, Some(by));
        let over = sealed > lim.peer_bytes
            || files >= lim.files
            || peer_files >= lim.peer_files
            || peer_unfilled >= MAX_UNFILLED_PER_PEER
            || bytes.saturating_add(new.charge()) > lim.bytes
            || peer_bytes.saturating_add(new.charge()) > lim.peer_bytes;
        match over {
            true => Verdict::Refuse(MediaRefusal::Full),
            false => Verdict::Accept(dev),
        }
    }

    /// Decides a file of `sealed` bytes kept here whole already (for other devices) that
    /// peer `by` asks to keep for one more device (`Hold` of a file this mailbox has, a
    /// *grant*: one stored copy, each device granted). It is charged whole to that device,
    /// within its media quota and the peer's share of it, as a file deposited anew would be
    /// once filled; nothing is reserved, since no chunk comes.
    pub fn grant(
        &self,
        to: Option<(DeviceKey, &[Held<'_>])>,
        by: &[u8],
        sealed: u64,
    ) -> Verdict<MediaRefusal, DeviceKey> {
        let (Some(lim), Some((dev, kept))) = (self.media_limits(), to) else {
            return Verdict::Refuse(MediaRefusal::Unauthorized);
        };
        let (files, _, bytes) = usage(kept, None);
        let (peer_files, _, peer_bytes) = usage(kept, Some(by));
        let over = sealed > lim.peer_bytes
            || files >= lim.files
            || peer_files >= lim.peer_files
            || bytes.saturating_add(sealed) > lim.bytes
            || peer_bytes.saturating_add(sealed) > lim.peer_bytes;
        match over {
            true => Verdict::Refuse(MediaRefusal::Full),
            false => Verdict::Accept(dev),
        }
    }

    /// Decides a new chunk of `len` sealed bytes for the file `kept[at]` held for a device
    /// (`kept`: everything held for it): refused as `Full` when storing it would take the
    /// device, or the file's depositor, past its bytes.
    pub fn put(&self, kept: &[Held<'_>], at: usize, len: u64) -> Verdict<MediaRefusal> {
        let (Some(lim), Some(file)) = (self.media_limits(), kept.get(at)) else {
            return Verdict::Refuse(MediaRefusal::Unauthorized);
        };
        let after = Held {
            stored: file.stored.saturating_add(len),
            ..*file
        };
        let grows = after.charge().saturating_sub(file.charge());
        let (_, _, bytes) = usage(kept, None);
        let peer_bytes = match file.by {
            Some(by) => usage(kept, Some(by)).2,
            None => 0,
        };
        let peer_max = match file.by {
            Some(_) => lim.peer_bytes,
            None => u64::MAX,
        };
        // A chunk its reservation covers is always taken (the total may be over only
        // through files kept before fill records, or a smaller quota since).
        let over =
            bytes.saturating_add(grows) > lim.bytes || peer_bytes.saturating_add(grows) > peer_max;
        if grows > 0 && over {
            return Verdict::Refuse(MediaRefusal::Full);
        }
        Verdict::Accept(())
    }

    /// When a held file is dropped (wall clock, ms), given when it is kept until once filled
    /// (`until_ms`, from [`Self::held_until`] at the `Hold`), whether it is filled, and the
    /// time of its last progress (the `Hold`, or its last new chunk).
    pub fn hold_expiry(&self, until_ms: u64, filled: bool, last_ms: u64) -> u64 {
        if filled {
            return until_ms;
        }
        let idle = u64::try_from(HOLD_IDLE.as_millis()).unwrap_or(u64::MAX);
        last_ms.saturating_add(idle).min(until_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MailboxConfig, MailboxService};
    use super::*;

    const DEV: DeviceKey = DeviceKey([3; 32]);
    const MIB: u64 = 1 << 20;

    fn mailbox(media_bytes: u64, media_files: usize) -> MailboxService {
        MailboxService::new(Some(MailboxConfig {
            media_bytes,
            media_files,
            ..MailboxConfig::default()
        }))
    }

    fn unfilled(by: &[u8], sealed: u64) -> Held<'_> {
        Held {
            sealed,
            stored: 0,
            filled: false,
            by: Some(by),
        }
    }

    /// Regression (threat model, "Mailbox"): a peer that declares huge files and never
    /// fills them took the device's whole media quota, and honest files were refused.
    #[test]
    fn unfilled_files_of_one_peer_cannot_take_a_devices_quota() {
        let m = mailbox(1 << 30, 256);
        let (evil, honest) = (b"evil".as_slice(), b"honest".as_slice());
        let huge = 256 * MIB;
        let chunks = (huge / CHUNK as u64) as u32;
        let mut kept = Vec::new();
        while let Verdict::Accept(_) = m.hold(Some((DEV, &kept)), evil, huge, chunks) {
            kept.push(unfilled(evil, huge));
            assert!(kept.len() <= MAX_UNFILLED_PER_PEER, "bounded per peer");
        }
        assert_eq!(kept.len(), MAX_UNFILLED_PER_PEER);
        let (_, _, taken) = usage(&kept, None);
        assert_eq!(taken, MAX_UNFILLED_PER_PEER as u64 * HOLD_RESERVE);
        // An honest 100 MiB file still finds room, and fills.
        let sealed = 100 * MIB;
        let chunks = (sealed / CHUNK as u64) as u32;
        assert_eq!(
            m.hold(Some((DEV, &kept)), honest, sealed, chunks),
            Verdict::Accept(DEV)
        );
        kept.push(unfilled(honest, sealed));
        let at = kept.len() - 1;
        for _ in 0..chunks {
            assert_eq!(m.put(&kept, at, CHUNK as u64), Verdict::Accept(()));
            kept[at].stored += CHUNK as u64;
        }
    }

    #[test]
    fn one_peer_holds_at_most_its_share_even_filled() {
        let m = mailbox(40 * MIB, 8);
        let by = b"p".as_slice();
        // Larger than the share (10 MiB): refused at once.
        assert_eq!(
            m.hold(Some((DEV, &[])), by, 11 * MIB, 44),
            Verdict::Refuse(MediaRefusal::Full)
        );
        let full = |stored| Held {
            sealed: stored,
            stored,
            filled: true,
            by: Some(by),
        };
        let kept = [full(6 * MIB)];
        // 6 MiB + a 4 MiB reservation fits; 6 + 5 does not.
        assert_eq!(
            m.hold(Some((DEV, &kept)), by, 4 * MIB, 16),
            Verdict::Accept(DEV)
        );
        assert_eq!(
            m.hold(Some((DEV, &kept)), by, 5 * MIB, 20),
            Verdict::Refuse(MediaRefusal::Full)
        );
        // Two files is its share of 8: a third is refused, another peer's is not.
        let kept = [full(MIB), full(MIB)];
        assert_eq!(
            m.hold(Some((DEV, &kept)), by, MIB, 4),
            Verdict::Refuse(MediaRefusal::Full)
        );
        assert_eq!(
            m.hold(Some((DEV, &kept)), b"q", MIB, 4),
            Verdict::Accept(DEV)
        );
    }

    #[test]
    fn chunks_are_charged_as_stored_within_the_device_quota() {
        let m = mailbox(40 * MIB, 8);
        let old = Held {
            sealed: 31 * MIB,
            stored: 31 * MIB,
            filled: true,
            by: None,
        };
        let mut kept = [old, unfilled(b"a", 10 * MIB)];
        // 31 + 8 reserved; a chunk takes it to 39.25 MiB.
        assert_eq!(m.put(&kept, 1, CHUNK as u64), Verdict::Accept(()));
        kept[1].stored = 5 * MIB;
        // 31 + 5 + 5 (the rest, reserved): over, but the next chunk costs nothing more.
        assert_eq!(m.put(&kept, 1, CHUNK as u64), Verdict::Accept(()));
        kept[1].stored = MIB;
        // 31 + 1 + 8 = 40: a chunk more would be over the device's 40 MiB.
        assert_eq!(
            m.put(&kept, 1, CHUNK as u64),
            Verdict::Refuse(MediaRefusal::Full)
        );
        assert_eq!(
            m.put(&kept, 5, 1),
            Verdict::Refuse(MediaRefusal::Unauthorized)
        );
    }

    #[test]
    fn a_file_kept_whole_is_granted_within_the_devices_quota() {
        let m = mailbox(40 * MIB, 8);
        let by = b"p".as_slice();
        assert_eq!(m.grant(Some((DEV, &[])), by, 9 * MIB), Verdict::Accept(DEV));
        // Over the peer's share (10 MiB), alone or with what it holds already.
        assert_eq!(
            m.grant(Some((DEV, &[])), by, 11 * MIB),
            Verdict::Refuse(MediaRefusal::Full)
        );
        let mine = [unfilled(by, 4 * MIB)];
        assert_eq!(
            m.grant(Some((DEV, &mine)), by, 7 * MIB),
            Verdict::Refuse(MediaRefusal::Full)
        );
        // Over the device's bytes, whoever deposited them.
        let full = Held {
            sealed: 35 * MIB,
            stored: 35 * MIB,
            filled: true,
            by: None,
        };
        assert_eq!(
            m.grant(Some((DEV, &[full])), by, 6 * MIB),
            Verdict::Refuse(MediaRefusal::Full)
        );
        assert_eq!(
            m.grant(None, by, MIB),
            Verdict::Refuse(MediaRefusal::Unauthorized)
        );
    }

    #[test]
    fn only_plausible_files_for_registered_devices() {
        let m = mailbox(MIB, 4);
        assert_eq!(
            m.hold(None, b"p", 100, 1),
            Verdict::Refuse(MediaRefusal::Unauthorized)
        );
        for (sealed, chunks) in [(100, 0), (10, 1), ((CHUNK + TAG + 1) as u64, 1)] {
            assert_eq!(
                m.hold(Some((DEV, &[])), b"p", sealed, chunks),
                Verdict::Refuse(MediaRefusal::Invalid)
            );
        }
        let not_serving = MailboxService::new(None);
        assert_eq!(
            not_serving.hold(Some((DEV, &[])), b"p", 100, 1),
            Verdict::Refuse(MediaRefusal::Unauthorized)
        );
    }

    #[test]
    fn unfilled_files_go_soon_filled_ones_at_their_retention() {
        let m = mailbox(MIB, 4);
        let idle = HOLD_IDLE.as_millis() as u64;
        let until = m.held_until(1000);
        assert_eq!(m.hold_expiry(until, false, 1000), 1000 + idle);
        assert_eq!(m.hold_expiry(until, false, 5000), 5000 + idle);
        assert_eq!(m.hold_expiry(until, true, 5000), until);
        assert_eq!(
            m.hold_expiry(2000, false, 1000),
            2000,
            "never past the retention"
        );
    }
}
