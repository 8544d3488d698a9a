use super::*;
use kith_crypto::Identity;
use kith_types::OpHash;

fn key(i: u8) -> Identity {
    Identity::from_secret(&[i; 32])
}

fn pk(i: u8) -> IdentityKey {
    key(i).public()
}

fn op(g: GroupId, parents: Vec<OpHash>, by: u8, at: u64, kind: OpKind) -> GroupOp {
    let k = key(by);
    GroupOp::new(g, parents, pk(by), at, kind, |m| k.sign(m)).unwrap()
}

fn create(by: u8, members: &[u8], at: u64) -> GroupOp {
    op(
        GroupId::default(),
        vec![],
        by,
        at,
        OpKind::Create {
            name: "G".into(),
            members: members.iter().map(|m| pk(*m)).collect(),
        },
    )
}

#[test]
fn ops_reach_the_log_only_of_groups_this_user_is_in() {
    let me = pk(2);
    let c = create(1, &[2], 0);
    let log = GroupLog::new(c.clone()).unwrap();
    let g = log.id();
    let rename = op(g, log.heads(), 1, 1, OpKind::Rename("x".into()));
    assert_eq!(
        route(&rename, Some(log.current()), false, &me, true),
        Route::Log
    );
    assert_eq!(route(&rename, None, false, &me, true), Route::Invite);
    // An unknown group's ops from a stranger are not held: they could push out a real
    // invitation.
    assert_eq!(route(&rename, None, false, &me, false), Route::Ignore);
    // A group this user left: ignored, unless it adds this user back or is needed.
    let other = pk(5);
    assert_eq!(
        route(&rename, Some(log.current()), false, &other, true),
        Route::Ignore
    );
    assert_eq!(
        route(&rename, Some(log.current()), true, &other, false),
        Route::Log
    );
    let add = op(g, log.heads(), 1, 1, OpKind::Add(other));
    assert_eq!(
        route(&add, Some(log.current()), false, &other, false),
        Route::Log
    );
}

#[test]
fn an_invitation_is_kept_only_from_a_contact() {
    let me = pk(2);
    let log = GroupLog::new(create(9, &[2, 3], 0)).unwrap();
    assert_eq!(made_member_by(&log, &me), Some(pk(9)));
    assert!(
        !accept_invite(&log, &me, |k| *k == pk(1)),
        "9 is a stranger"
    );
    assert!(accept_invite(&log, &me, |k| *k == pk(9)));
    // A group that does not name this user is no invitation at all.
    let log = GroupLog::new(create(9, &[3], 0)).unwrap();
    assert!(!accept_invite(&log, &me, |_| true));
    // Added later by a contact (who is an admin): kept.
    let mut log = GroupLog::new(create(9, &[1], 0)).unwrap();
    let g = log.id();
    log.insert(op(g, log.heads(), 9, 1, OpKind::Promote(pk(1))))
        .unwrap();
    log.insert(op(g, log.heads(), 1, 2, OpKind::Add(me)))
        .unwrap();
    assert_eq!(made_member_by(&log, &me), Some(pk(1)));
    assert!(accept_invite(&log, &me, |k| *k == pk(1)));
}

#[test]
fn invitations_are_bounded_and_start_with_a_create() {
    let mut inv = Invites::default();
    let c = create(1, &[2], 0);
    let g = GroupOp::group_id_of(&c).unwrap();
    let stray = op(g, vec![OpHash([1; 32])], 1, 1, OpKind::Leave);
    assert_eq!(inv.offer(g, stray), Offered::Dropped, "no create yet");
    assert_eq!(
        inv.offer(GroupId([1; 16]), c.clone()),
        Offered::Dropped,
        "wrong id"
    );
    assert_eq!(inv.offer(g, c), Offered::Held);
    for i in 0..(MAX_INVITES as u64 + 10) {
        let c = create(3, &[2], i + 1);
        let id = GroupOp::group_id_of(&c).unwrap();
        assert_eq!(inv.offer(id, c), Offered::Held);
    }
    assert_eq!(inv.len(), MAX_INVITES);
    assert!(inv.get(&g).is_none(), "the oldest went first");
}

#[test]
fn updates_are_cut_to_fit_with_certificates_last() {
    let c = create(1, &[2], 0);
    let log = GroupLog::new(c.clone()).unwrap();
    let g = log.id();
    let mut ops = vec![c];
    for i in 0..(MAX_UPDATE_OPS as u64 + 5) {
        ops.push(op(g, log.heads(), 1, i, OpKind::Rename(format!("{i}"))));
    }
    let bodies = cut_updates(&ops, &[]);
    assert_eq!(bodies.len(), 2);
    let mut n = 0;
    for b in &bodies {
        let Body::GroupUpdate { ops, devices } = b else {
            panic!("not an update")
        };
        assert!(ops.len() <= MAX_UPDATE_OPS);
        assert!(devices.is_empty());
        n += ops.len();
    }
    assert_eq!(n, MAX_UPDATE_OPS + 6);
}

/// A stranger who starts an invitation and keeps sending valid ops for it makes a device
/// hold at most [`MAX_INVITE_BYTES`] of them.
#[test]
fn an_invitation_holds_a_bounded_number_of_bytes() {
    let mut inv = Invites::default();
    let c = create(9, &[2], 0);
    let g = GroupOp::group_id_of(&c).unwrap();
    let mut held = c.encode().unwrap().len();
    assert_eq!(inv.offer(g, c), Offered::Held);
    let mut dropped = false;
    for i in 0..100_000u64 {
        let parents = inv.get(&g).unwrap().heads();
        // Large ops: a count of ops alone would let these add up to megabytes.
        let text: String = format!("{i:0>500}");
        let o = op(g, parents, 9, i + 1, OpKind::Describe(text));
        let size = o.encode().unwrap().len();
        match inv.offer(g, o) {
            Offered::Held => held += size,
            Offered::Dropped => {
                dropped = true;
                break;
            }
        }
    }
    assert!(dropped, "more ops are refused once the invitation is full");
    assert!(held <= MAX_INVITE_BYTES);
    assert!(held > MAX_INVITE_BYTES / 2, "an honest-sized log fits");
}
