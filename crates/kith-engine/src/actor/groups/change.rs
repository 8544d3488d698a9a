//! The two small rules around a membership change, apart from the state they act on.
//!
//! - `change_op`: what a user's `kith group add|remove|promote|demote|rename|describe|leave`
//!   makes, checked against the group's state as this member sees it, so the user hears
//!   why a change is refused instead of sending an op every member would skip.
//! - `changed_by`: whether an applied op is news next to the state before (which changes a
//!   member is told about after a batch of ops).

use crate::model::Outcome;
use kith_proto::group::{Applied, GroupState, OpKind};
use kith_types::IdentityKey;

use super::{GroupChange, group_err};
use crate::model::EngineError;

/// The op a user's change makes, checked against the group's state as this member sees it
/// (the rule in `kith_proto::group` would skip a change that is not allowed or changes
/// nothing; the user is told instead): only admins change members, admins, the name and
/// the description; adding who is there or removing who is not is refused; a name has 1 to
/// [`MAX_GROUP_NAME`](kith_proto::group::MAX_GROUP_NAME) characters. `contact` finds a
/// member by name (`me` is this user); it is asked only once the change is allowed.
pub(super) fn change_op(
    state: &GroupState,
    me: IdentityKey,
    change: &GroupChange,
    contact: impl FnOnce(&str) -> Outcome<IdentityKey>,
) -> Outcome<OpKind> {
    let admin = state.admins.contains(&me);
    let kind = match change {
        GroupChange::Leave => OpKind::Leave,
        GroupChange::Rename(n) | GroupChange::Describe(n) if !admin => {
            let _ = n;
            return Ok(Err(group_err(
                "only admins can change the group's name and description",
            )));
        }
        GroupChange::Rename(n) => OpKind::Rename(n.trim().to_string()),
        GroupChange::Describe(d) => OpKind::Describe(d.to_string()),
        GroupChange::Add(n)
        | GroupChange::Remove(n)
        | GroupChange::Promote(n)
        | GroupChange::Demote(n) => {
            if !admin {
                return Ok(Err(group_err("only admins can change members and admins")));
            }
            let who = match contact(n)? {
                Ok(k) => k,
                Err(e) => return Ok(Err(e)),
            };
            match change {
                GroupChange::Add(_) if state.members.contains(&who) => {
                    return Ok(Err(group_err(format!("{n} is already a member"))));
                }
                GroupChange::Add(_)
                    if state.members.len() >= kith_proto::group::MAX_GROUP_MEMBERS =>
                {
                    return Ok(Err(group_err("the group is full")));
                }
                GroupChange::Add(_) => OpKind::Add(who),
                _ if !state.members.contains(&who) => {
                    return Ok(Err(group_err(format!("{n} is not a member"))));
                }
                GroupChange::Remove(_) if who == me => {
                    return Ok(Err(group_err("to leave, use `kith group leave`")));
                }
                GroupChange::Remove(_) => OpKind::Remove(who),
                GroupChange::Promote(_) if state.admins.contains(&who) => {
                    return Ok(Err(group_err(format!("{n} is already an admin"))));
                }
                GroupChange::Promote(_) => OpKind::Promote(who),
                GroupChange::Demote(_) if !state.admins.contains(&who) => {
                    return Ok(Err(group_err(format!("{n} is not an admin"))));
                }
                _ => OpKind::Demote(who),
            }
        }
        GroupChange::Delete => return Ok(Err(group_err("cannot delete"))),
    };
    if let OpKind::Rename(n) | OpKind::Describe(n) = &kind {
        let max = if matches!(kind, OpKind::Rename(_)) {
            kith_proto::group::MAX_GROUP_NAME
        } else {
            kith_proto::group::MAX_DESCRIPTION
        };
        if (matches!(kind, OpKind::Rename(_)) && n.is_empty()) || n.chars().count() > max {
            return Ok(Err(EngineError::BadName(format!("1 to {max} characters"))));
        }
    }
    Ok(Ok(kind))
}

/// Whether op `a` is new relative to `before` (a cheap test: its author, time and kind do
/// not describe a change `before` already shows). Used only to choose which changes to
/// announce.
pub(super) fn changed_by(before: &GroupState, now: &GroupState, a: &Applied) -> bool {
    match &a.kind {
        OpKind::Create { .. } => before.members.is_empty(),
        OpKind::Add(k) => !before.members.contains(k) && now.members.contains(k),
        OpKind::Remove(k) => before.members.contains(k) && !now.members.contains(k),
        OpKind::Promote(k) => !before.admins.contains(k) && now.admins.contains(k),
        OpKind::Demote(k) => before.admins.contains(k) && !now.admins.contains(k),
        OpKind::Rename(n) => before.name != *n && now.name == *n,
        OpKind::Describe(d) => before.description != *d && now.description == *d,
        OpKind::Leave => before.members.contains(&a.author) && !now.members.contains(&a.author),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: IdentityKey = IdentityKey([1; 32]);
    const BOB: IdentityKey = IdentityKey([2; 32]);

    fn state(admins: &[IdentityKey]) -> GroupState {
        GroupState {
            name: "Kith".into(),
            members: [ME, BOB].into_iter().collect(),
            admins: admins.iter().copied().collect(),
            ..Default::default()
        }
    }

    fn bob(n: &str) -> Outcome<IdentityKey> {
        Ok(match n {
            "bob" => Ok(BOB),
            "me" => Ok(ME),
            _ => Err(EngineError::UnknownContact(n.into())),
        })
    }

    fn refused(r: Outcome<OpKind>) -> String {
        match r.unwrap() {
            Err(e) => e.to_string(),
            Ok(k) => panic!("allowed: {k:?}"),
        }
    }

    #[test]
    fn an_admin_changes_members_who_are_there() {
        let st = state(&[ME]);
        let op = |c: GroupChange| change_op(&st, ME, &c, bob).unwrap().unwrap();
        assert_eq!(op(GroupChange::Remove("bob".into())), OpKind::Remove(BOB));
        assert_eq!(op(GroupChange::Promote("bob".into())), OpKind::Promote(BOB));
        assert_eq!(
            op(GroupChange::Rename(" Clan ".into())),
            OpKind::Rename("Clan".into())
        );
        assert_eq!(op(GroupChange::Leave), OpKind::Leave);
        let r = |c: GroupChange| refused(change_op(&st, ME, &c, bob));
        assert!(r(GroupChange::Add("bob".into())).contains("already a member"));
        assert!(r(GroupChange::Demote("bob".into())).contains("not an admin"));
        assert!(r(GroupChange::Remove("me".into())).contains("kith group leave"));
        assert!(r(GroupChange::Rename(" ".into())).contains("1 to"));
    }

    #[test]
    fn a_member_who_is_not_an_admin_may_only_leave() {
        let st = state(&[BOB]);
        let asked = std::cell::Cell::new(false);
        let contact = |n: &str| {
            asked.set(true);
            bob(n)
        };
        let r = refused(change_op(
            &st,
            ME,
            &GroupChange::Add("carol".into()),
            contact,
        ));
        assert!(r.contains("only admins"), "{r}");
        assert!(
            !asked.get(),
            "the name is not looked up before the change is allowed"
        );
        let r = refused(change_op(&st, ME, &GroupChange::Describe("x".into()), bob));
        assert!(r.contains("only admins"), "{r}");
        let leave = change_op(&st, ME, &GroupChange::Leave, bob)
            .unwrap()
            .unwrap();
        assert_eq!(leave, OpKind::Leave);
    }
}
