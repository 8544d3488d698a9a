//! Group scenarios: one group of N members (each a real node), some of them sending, some
//! going offline and coming back while messages flow, then (optionally) a member removed.
//!
//! At the end every member that is still in the group must show every message exactly once,
//! each sender's messages in the order they were sent, and the same membership; a removed
//! member must show nothing sent after its removal. The report gives delivery, duplicates,
//! order, latency from `send` to each member's `group_message` event, and the cost of the run.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kith_engine::{EngineHandle, Event, GroupChange};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

mod media;
mod scenario;
pub use media::{MediaPlan, MediaReport};
pub use scenario::{GroupReport, GroupScenario, JoinPlan};

use crate::node::{Node, Seen, memory_port, start_all};
use crate::{SimError, SimNet, pct, peak_rss_mib, proc_cpu_s};

fn number(text: &str) -> Option<usize> {
    text.strip_prefix("g ")?.parse().ok()
}

/// The message number of a group message event.
fn message_number(ev: &Event) -> Option<usize> {
    match ev {
        Event::GroupMessage { text, .. } => number(text),
        _ => None,
    }
}

/// A step of a join plan.
enum Join {
    /// The creator adds this member.
    Add(usize),
    /// This member comes online.
    Up(usize),
}

enum Step {
    Send { from: usize, n: usize },
    Down(usize),
    Up(usize),
}

/// Per member: how often each message number is shown, and the numbers in display order.
async fn histories(members: &[Node]) -> HashMap<usize, (HashMap<usize, usize>, Vec<usize>)> {
    let mut out = HashMap::new();
    for (i, m) in members.iter().enumerate() {
        let Some(h) = &m.handle else { continue };
        let Ok(items) = h.group_history("sim".into(), 1_000_000).await else {
            continue;
        };
        let mut counts: HashMap<usize, usize> = HashMap::new();
        let mut order = Vec::new();
        for it in items.iter().filter(|it| it.kind == "message") {
            if let Some(n) = number(&it.text) {
                *counts.entry(n).or_default() += 1;
                order.push(n);
            }
        }
        out.insert(i, (counts, order));
    }
    out
}

/// Link ends open, link ends opened so far and bytes sent, over these members' links.
fn link_totals<'a>(sims: impl Iterator<Item = &'a SimNet>) -> (u64, u64, u64) {
    sims.fold((0, 0, 0), |(o, n, b), m| {
        (o + m.open_links(), n + m.links_opened(), b + m.traffic().0)
    })
}

/// Runs a group scenario to the end and reports.
pub async fn run_group(s: &GroupScenario) -> Result<GroupReport, SimError> {
    let t_start = Instant::now();
    let cpu0 = proc_cpu_s();
    let mut rng = StdRng::seed_from_u64(s.seed);
    let tmp = tempfile::tempdir()?;
    let (seen_tx, mut seen_rx) = mpsc::channel::<Seen>(1 << 20);
    let mut members = Vec::with_capacity(s.members);
    for i in 0..s.members {
        let mut sim = SimNet::new(s.links.as_ref().map(|l| l.shape(s.seed, i)));
        sim.idle_timeout = (s.links.as_ref())
            .and_then(|l| l.idle_ms)
            .map(Duration::from_millis);
        members.push(Node {
            fsync: !s.skip_fsync,
            ..Node::new(
                tmp.path(),
                &format!("m{i}"),
                memory_port(),
                true,
                sim,
                message_number,
            )?
        });
    }
    // A few members start at once, as in `run`.
    let boot = start_all(&mut members, &seen_tx, 1, |_, _| {}).await?;
    // The creator knows everyone; everyone knows the creator. Members need not know each
    // other: the group tells them about each other's devices.
    let admin = members[0].handle.clone();
    let Some(admin) = admin else {
        return Err(SimError::Node {
            node: 0,
            reason: "not running".into(),
        });
    };
    let err = |i: usize| {
        move |e: kith_engine::EngineError| SimError::Node {
            node: i,
            reason: e.to_string(),
        }
    };
    let admin_code = members[0].code.clone();
    // Contacts are added a few dozen at once (each engine batches them into few writes).
    let pairs: Vec<(usize, String, Option<EngineHandle>)> = members
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, m)| (i, m.code.clone(), m.handle.clone()))
        .collect();
    for chunk in pairs.chunks(32) {
        let added = futures::future::join_all(chunk.iter().map(|(i, code, h)| {
            let (admin, admin_code) = (&admin, &admin_code);
            async move {
                admin
                    .add_contact(code.clone(), format!("n{i}"))
                    .await
                    .map_err(err(*i))?;
                if let Some(h) = h {
                    h.add_contact(admin_code.clone(), "n0".into())
                        .await
                        .map_err(err(*i))?;
                }
                Ok::<(), SimError>(())
            }
        }))
        .await;
        added.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    let t_setup = Instant::now();
    if std::env::var_os("KITH_SIM_DEBUG").is_some() {
        eprintln!(
            "nodes started and contacts exchanged after {:.1} s",
            t_start.elapsed().as_secs_f64()
        );
    }
    let links = |members: &[Node]| link_totals(members.iter().map(|m| &m.sim));
    let debug = std::env::var_os("KITH_SIM_DEBUG").is_some();
    // With KITH_SIM_DEBUG, the links and bytes of all members every 10 s until the run ends.
    let monitor = debug.then(|| {
        let sims: Vec<SimNet> = members.iter().map(|m| m.sim.clone()).collect();
        let t0 = Instant::now();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let (open, opened, sent) = link_totals(sims.iter());
                let mut per: Vec<(u64, usize)> = sims
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m.open_links(), i))
                    .collect();
                per.sort_unstable();
                let median = per.get(per.len() / 2).map_or(0, |p| p.0);
                per.reverse();
                per.truncate(10);
                eprintln!(
                    "[{:.0} s] links open {open}, opened {opened}; {sent} bytes sent; median \
                     {median} per member; most (links, member) {per:?}",
                    t0.elapsed().as_secs_f64()
                );
            }
        })
    });
    // A join plan: when each member is added, and who is offline until some time after.
    let added_at = (s.join.as_ref())
        .map(|j| j.added_at_ms(s.members))
        .unwrap_or_else(|| vec![0; s.members]);
    let mut joins: Vec<(u64, Join)> = (1..s.members)
        .filter(|i| added_at[*i] > 0)
        .map(|i| (added_at[i], Join::Add(i)))
        .collect();
    let mut joined_late = 0;
    if let Some(j) = &s.join {
        let mut away: Vec<usize> = (s.senders..s.members).collect();
        away.shuffle(&mut rng);
        away.truncate((j.offline * away.len() as f64).round() as usize);
        away.sort_unstable();
        for u in away {
            members[u].stop().await;
            let back = added_at[u] + rng.random_range(j.offline_for_ms.0..=j.offline_for_ms.1);
            joins.push((back, Join::Up(u)));
            joined_late += 1;
        }
    }
    joins.sort_by_key(|(t, _)| *t);
    let last_added_s = added_at.iter().copied().max().unwrap_or(0) as f64 / 1000.0;
    admin
        .group_create(
            "sim".into(),
            (1..s.members)
                .filter(|i| added_at[*i] == 0)
                .map(|i| format!("n{i}"))
                .collect(),
        )
        .await
        .map_err(err(0))?;
    let t_created = Instant::now();
    let mut joins = joins.into_iter().peekable();
    if debug {
        let (open, opened, sent) = links(&members);
        eprintln!(
            "group made after {:.1} s; links open {open}, opened {opened}; {sent} bytes sent",
            t_setup.elapsed().as_secs_f64()
        );
    }
    // Wait until every member has the group with everyone in it (asking only those that
    // did not have it last time).
    let deadline = Instant::now() + Duration::from_millis(s.setup_ms);
    let mut has_group = vec![false; s.members];
    loop {
        // The join plan's steps that are due.
        while let Some((at, _)) = joins.peek()
            && t_created + Duration::from_millis(*at) <= Instant::now()
        {
            let Some((_, step)) = joins.next() else { break };
            match step {
                Join::Add(i) => {
                    admin
                        .group_change("sim".into(), GroupChange::Add(format!("n{i}")))
                        .await
                        .map_err(err(0))?;
                }
                Join::Up(u) => members[u].start(u, boot.clone(), seen_tx.clone()).await?,
            }
        }
        for (m, has) in members.iter().zip(has_group.iter_mut()) {
            if !*has
                && let Some(h) = &m.handle
                && h.group_info("sim".into())
                    .await
                    .is_ok_and(|g| g.members.len() == s.members)
            {
                *has = true;
            }
        }
        let ready = has_group.iter().filter(|h| **h).count();
        if ready == s.members {
            break;
        }
        if Instant::now() >= deadline {
            return Err(SimError::Node {
                node: 0,
                reason: format!("the group reached only {ready} of {} members", s.members),
            });
        }
        if debug {
            let (open, opened, sent) = links(&members);
            eprintln!(
                "setup: {ready} of {} members have the whole group after {:.0} s; links open \
                 {open}, opened {opened}; {sent} bytes sent",
                s.members,
                t_setup.elapsed().as_secs_f64()
            );
        }
        // Asking is not free (each answer is a batch on the member's engine): not too often,
        // but the join plan's next step on time.
        let mut wake = Instant::now() + Duration::from_millis(200 + 10 * s.members as u64);
        if let Some((at, _)) = joins.peek() {
            wake = wake.min(t_created + Duration::from_millis(*at));
        }
        tokio::time::sleep_until(wake.into()).await;
    }
    let setup_s = t_setup.elapsed().as_secs_f64();
    // Warm-up: each sender's first message shares its session key with every member (one
    // pairwise message each, a pre-key claim first); that is a one-time cost per session,
    // measured apart from the steady-state latency.
    if s.warmup {
        for (i, m) in members.iter().enumerate().take(s.senders) {
            if let Some(h) = &m.handle {
                let _ = h.group_send("sim".into(), format!("warm {i}")).await;
            }
        }
        let deadline = Instant::now() + Duration::from_millis(s.setup_ms);
        let mut warmed = vec![false; s.members];
        loop {
            for (m, done) in members.iter().zip(warmed.iter_mut()) {
                if !*done
                    && let Some(h) = &m.handle
                    && h.group_history("sim".into(), 100_000)
                        .await
                        .is_ok_and(|items| {
                            let warm = items
                                .iter()
                                .filter(|it| it.text.starts_with("warm "))
                                .count();
                            warm == s.senders
                        })
                {
                    *done = true;
                }
            }
            let ready = warmed.iter().filter(|d| **d).count();
            if std::env::var_os("KITH_SIM_DEBUG").is_some() {
                eprintln!(
                    "warm-up: {ready} of {} members have every sender's first message",
                    s.members
                );
                for (i, m) in members.iter().enumerate().filter(|(i, _)| !warmed[*i]) {
                    let Some(h) = &m.handle else { continue };
                    let have: Vec<String> = h
                        .group_history("sim".into(), 100_000)
                        .await
                        .map(|items| {
                            items
                                .iter()
                                .filter(|it| it.text.starts_with("warm "))
                                .map(|it| it.text.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    let info = h.group_info("sim".into()).await.ok();
                    eprintln!(
                        "  member {i} ({}): has {have:?}; frames {:?} undecryptable {:?}",
                        &m.peer_id,
                        info.as_ref().map(|g| g.frames),
                        info.as_ref().map(|g| g.undecryptable)
                    );
                }
                for (i, m) in members.iter().enumerate().take(s.senders) {
                    let Some(h) = &m.handle else { continue };
                    let waiting: Vec<(String, usize, bool)> = h
                        .contacts()
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|c| c.pending > 0)
                        .map(|c| (c.name, c.pending, c.connected))
                        .collect();
                    eprintln!("  sender {i}: waiting (contact, items, connected) {waiting:?}");
                }
            }
            if ready == s.members || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 + 10 * s.members as u64)).await;
        }
    }
    let warmup_s = t_setup.elapsed().as_secs_f64() - setup_s;
    // The file, before the messages.
    let media = match &s.media {
        Some(plan) => Some(media::run_media(&members, plan, s.seed, tmp.path()).await?),
        None => None,
    };

    // The plan.
    let senders: Vec<usize> = (0..s.senders).collect();
    let mut plan: Vec<(u64, Step)> = Vec::new();
    let gap = s.send_over_ms as f64 / s.messages as f64;
    for n in 0..s.messages {
        let from = senders[rng.random_range(0..senders.len())];
        plan.push(((n as f64 * gap) as u64, Step::Send { from, n }));
    }
    let mut quiet: Vec<usize> = (s.senders..s.members).collect();
    quiet.shuffle(&mut rng);
    quiet.truncate((s.churn * quiet.len() as f64).round() as usize);
    let restarts = quiet.len();
    for &u in &quiet {
        let down = rng.random_range(s.down_at_ms.0..=s.down_at_ms.1);
        let back = down + rng.random_range(s.down_for_ms.0..=s.down_for_ms.1);
        plan.push((down, Step::Down(u)));
        plan.push((back, Step::Up(u)));
    }
    plan.sort_by_key(|(t, _)| *t);

    let traffic = |members: &[Node]| {
        members.iter().fold((0u64, 0u64, 0u64), |(a, b, d), m| {
            let (s, r) = m.sim.traffic();
            (a + s, b + r, d + m.sim.gossip().duplicates())
        })
    };
    let traffic0 = traffic(&members);
    let t0 = Instant::now();
    let mut sends: Vec<Option<(usize, Instant)>> = vec![None; s.messages + s.after_removal];
    for (at, step) in plan {
        tokio::time::sleep_until((t0 + Duration::from_millis(at)).into()).await;
        match step {
            Step::Send { from, n } => {
                if let Some(h) = &members[from].handle
                    && h.group_send("sim".into(), format!("g {n}")).await.is_ok()
                {
                    sends[n] = Some((from, Instant::now()));
                }
            }
            Step::Down(u) => members[u].stop().await,
            Step::Up(u) => {
                members[u]
                    .start(u, crate::node::boots_for(u, &boot), seen_tx.clone())
                    .await?
            }
        }
    }
    let mut arrivals: HashMap<(usize, usize), Vec<Instant>> = HashMap::new();
    let drain = |rx: &mut mpsc::Receiver<Seen>,
                 arrivals: &mut HashMap<(usize, usize), Vec<Instant>>| {
        while let Ok((i, n, at)) = rx.try_recv() {
            arrivals.entry((i, n)).or_default().push(at);
        }
    };
    let wait_all = |arrivals: &HashMap<(usize, usize), Vec<Instant>>,
                    sends: &[Option<(usize, Instant)>],
                    range: std::ops::Range<usize>,
                    skip: Option<usize>| {
        range.clone().all(|n| {
            sends[n].is_none_or(|(from, _)| {
                (0..s.members)
                    .filter(|i| *i != from && Some(*i) != skip)
                    .all(|i| arrivals.contains_key(&(i, n)))
            })
        })
    };
    let deadline = Instant::now() + Duration::from_millis(s.settle_ms);
    loop {
        drain(&mut seen_rx, &mut arrivals);
        if wait_all(&arrivals, &sends, 0..s.messages, None) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let traffic1 = traffic(&members);
    // Removal: the last member goes; the creator sends more.
    let mut removed = None;
    if s.after_removal > 0 {
        let r = s.members - 1;
        admin
            .group_change("sim".into(), GroupChange::Remove(format!("n{r}")))
            .await
            .map_err(err(0))?;
        removed = Some(r);
        // Wait until the other members apply the removal (so they do not share new keys
        // with it): their membership lists drop it.
        let deadline = Instant::now() + Duration::from_millis(s.settle_ms);
        loop {
            let mut done = 0;
            for m in members.iter().take(r) {
                if let Some(h) = &m.handle
                    && h.group_info("sim".into())
                        .await
                        .is_ok_and(|g| g.members.len() == s.members - 1)
                {
                    done += 1;
                }
            }
            if done == r || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for k in 0..s.after_removal {
            let n = s.messages + k;
            if admin
                .group_send("sim".into(), format!("g {n}"))
                .await
                .is_ok()
            {
                sends[n] = Some((0, Instant::now()));
            }
        }
        let deadline = Instant::now() + Duration::from_millis(s.settle_ms);
        loop {
            drain(&mut seen_rx, &mut arrivals);
            if wait_all(
                &arrivals,
                &sends,
                s.messages..s.messages + s.after_removal,
                removed,
            ) || Instant::now() >= deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drain(&mut seen_rx, &mut arrivals);

    // What each member shows.
    let shown = histories(&members).await;
    let total = s.messages + s.after_removal;
    let mut expected = 0;
    let mut delivered = 0;
    let mut duplicates = 0;
    let mut removed_saw = 0;
    for (n, sent) in sends.iter().enumerate().take(total) {
        let Some((from, _)) = *sent else { continue };
        for i in (0..s.members).filter(|i| *i != from) {
            let c = shown
                .get(&i)
                .and_then(|(m, _)| m.get(&n))
                .copied()
                .unwrap_or(0);
            if Some(i) == removed && n >= s.messages {
                removed_saw += usize::from(c > 0);
                continue;
            }
            expected += 1;
            delivered += usize::from(c > 0);
            duplicates += usize::from(c > 1);
        }
    }
    if std::env::var_os("KITH_SIM_DEBUG").is_some() {
        for (i, m) in members.iter().enumerate() {
            let missing: Vec<(usize, usize)> = (0..total)
                .filter_map(|n| sends[n].map(|(f, _)| (n, f)))
                .filter(|(n, f)| *f != i && shown.get(&i).is_none_or(|(c, _)| !c.contains_key(n)))
                .collect();
            let info = match &m.handle {
                Some(h) => h.group_info("sim".into()).await.ok(),
                None => None,
            };
            eprintln!(
                "member {i}: missing (msg, sender) {missing:?}; frames {:?} undecryptable {:?}",
                info.as_ref().map(|g| g.frames),
                info.as_ref().map(|g| g.undecryptable)
            );
        }
    }
    // Each sender's messages in the order sent (numbers rise per sender).
    let mut out_of_order = 0;
    for (_, order) in shown.values() {
        let mut last: HashMap<usize, usize> = HashMap::new();
        for &n in order {
            let Some((from, _)) = sends.get(n).copied().flatten() else {
                continue;
            };
            if let Some(prev) = last.insert(from, n)
                && prev > n
            {
                out_of_order += 1;
            }
        }
    }
    // Membership as each member still in the group computes it.
    let mut views: Vec<(String, BTreeSet<(String, bool)>)> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        if Some(i) == removed {
            continue;
        }
        if let Some(h) = &m.handle
            && let Ok(g) = h.group_info("sim".into()).await
        {
            views.push((
                g.name.clone(),
                g.members
                    .iter()
                    .map(|mv| (mv.identity.clone(), mv.admin))
                    .collect(),
            ));
        }
    }
    let states_agree = views.len() == s.members - usize::from(removed.is_some())
        && views.windows(2).all(|w| w[0] == w[1]);
    let mut latencies: Vec<f64> = Vec::new();
    for ((_, n), ats) in &arrivals {
        if let (Some((_, sent_at)), Some(first)) =
            (sends.get(*n).copied().flatten(), ats.iter().min())
        {
            latencies.push(first.saturating_duration_since(sent_at).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let sent_main = sends
        .iter()
        .take(s.messages)
        .filter(|x| x.is_some())
        .count();
    let per = (sent_main * s.members).max(1) as f64;
    let report = GroupReport {
        scenario: s.name.clone(),
        seed: s.seed,
        members: s.members,
        sent: sends.iter().filter(|x| x.is_some()).count(),
        expected,
        delivered,
        duplicates,
        out_of_order,
        states_agree,
        restarts,
        removed_saw,
        latency_ms: [
            pct(&latencies, 0.5),
            pct(&latencies, 0.95),
            pct(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0),
        ],
        bytes_sent_per_member_per_message: (traffic1.0 - traffic0.0) as f64 / per,
        bytes_received_per_member_per_message: (traffic1.1 - traffic0.1) as f64 / per,
        duplicates_per_member_per_message: traffic1.2.saturating_sub(traffic0.2) as f64 / per,
        joined_late,
        last_added_s,
        setup_s,
        warmup_s,
        wall_s: t_start.elapsed().as_secs_f64(),
        cpu_s: proc_cpu_s() - cpu0,
        peak_rss_mib: peak_rss_mib(),
        media,
    };
    for m in &mut members {
        m.stop().await;
    }
    if let Some(m) = monitor {
        m.abort();
    }
    Ok(report)
}
