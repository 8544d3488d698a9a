//! The actor's loop: it owns the store and the state, takes commands and network events,
//! applies a batch of them in one write transaction (group commit), then carries out what the
//! batch left to do ([`After`]) once the commit is known.
//!
//! 1. `run` waits on network events, commands and two timers (`biased`: network first).
//! 2. It drains up to [`MAX_GROUP`] more ready items into the batch.
//! 3. `process` answers read commands after the batch, hands network events that need no
//!    write to `on_net_now`, and runs everything else through `State::apply` in one
//!    transaction, with the crypto state flushed in it.
//! 4. `run_after` carries out each effect: replies, responses, network commands (through the
//!    backlog), events, pumps, registrations, publications. On a failed commit nothing is
//!    acknowledged and the Olm state is reloaded from the store.

use super::*;

/// How long a stopping engine waits for its network actor to end.
const NET_STOP_WAIT: Duration = Duration::from_secs(5);

impl Engine {
    /// Opens the data directory (creating keys and store on first run), starts the network
    /// and the actor. Returns the handle and the actor's task.
    pub async fn start(
        cfg: EngineConfig,
    ) -> Result<(EngineHandle, tokio::task::JoinHandle<()>), EngineError> {
        Self::start_with_passphrase(cfg, None).await
    }

    /// Like [`Engine::start`], with the passphrase that opens a protected key file (see
    /// [`crate::keys`]). The store is sealed at rest under the key file's storage key; a
    /// store still in clear is sealed in place first.
    pub async fn start_with_passphrase(
        cfg: EngineConfig,
        passphrase: Option<&[u8]>,
    ) -> Result<(EngineHandle, tokio::task::JoinHandle<()>), EngineError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(internal)?;
        let (keys, created) = KeyFile::load_or_create(&cfg.data_dir.join("keys"), passphrase)?;
        if created {
            info!("created a new identity");
        }
        // The clear on-disk search index of older versions holds message text: the index
        // now lives in memory only (rebuilt from the sealed store at start).
        super::search::remove_disk_index(&cfg.data_dir);
        let store = Store::open_sealed(
            &cfg.data_dir.join("kith.redb"),
            cfg.store_cache,
            kith_store::StorageSeal::new(keys.storage.bytes()),
        )
        .map_err(|e| match e {
            StoreError::InUse => EngineError::Internal(
                "another kith node is already running with this data directory".into(),
            ),
            StoreError::Unsealable => EngineError::KeyFile(
                "the store does not open with this key file's storage key".into(),
            ),
            other => internal(other),
        })?;
        let store = if cfg.store_fsync {
            store
        } else {
            store.without_fsync()
        };
        super::restored::renew_after_restore(&cfg.data_dir, &store).map_err(internal)?;
        #[cfg(feature = "test-hooks")]
        let faults = kith_store::Faults::default();
        #[cfg(feature = "test-hooks")]
        let store = store.with_faults(faults.clone());
        let peer = keys.p2p.public().to_peer_id();
        let device = load_device(&store, &keys, peer)?;
        let me = keys.identity.public();
        info!(identity = %me, %peer, "starting node");

        let (net, net_events, net_task) = kith_net::spawn(NetConfig {
            keypair: keys.p2p.clone(),
            listen: cfg.listen.clone(),
            bootstrap: cfg.bootstrap.clone(),
            mdns: cfg.mdns,
            relays: cfg.reach.relays.clone(),
            relay_server: cfg.reach.relay_server.clone(),
            private_ips: cfg.reach.private_ips,
            external: cfg.reach.external.clone(),
            options: cfg.net.clone(),
        })
        .await
        .map_err(|e| EngineError::Network(e.to_string()))?;

        let my_mailboxes = load_mailboxes(&store);
        let mailbox_tokens: HashMap<PeerId, String> = load_by_mailbox(&store, "mailbox_tokens");
        let push_endpoint = store
            .read(|r| r.meta("push_endpoint"))
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok());
        let mailbox_usage: HashMap<PeerId, MailboxUsage> = load_by_mailbox(&store, "mailbox_usage");
        let waker = match &cfg.mailbox {
            Some(m) => Some(Waker::spawn(m.push).map_err(internal)?),
            None => None,
        };
        let (tx, cmds) = mpsc::channel(COMMAND_QUEUE);
        let (media_tx, media_rx) = mpsc::channel(MEDIA_EVENTS);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let net_weak = net.downgrade();
        let social = Social::load(&store);
        let groups = Groups::load(&store);
        let watching = Watching::load(&store, cfg.mailbox.is_some());
        let search_build = super::search::start_build(&store, me);
        let registry = net.metrics();
        let metrics = registry.kith.clone();
        let backups = super::backup::Backups::load(&store);
        let engine = Engine {
            store,
            st: State {
                calls: calls::CallState::new(&cfg.calls, media_tx),
                social,
                groups,
                watching,
                data_dir: cfg.data_dir.clone(),
                mailbox: MailboxService::new(cfg.mailbox),
                my_mailboxes,
                mailbox_tokens,
                keys,
                me,
                device,
                net,
                backlog: Backlog::default(),
                events: events.clone(),
                sessions: HashMap::new(),
                dirty_sessions: HashSet::new(),
                to_seal: Default::default(),
                account_dirty: false,
                delivery: Delivery::new(),
                rng: rand::make_rng::<StdRng>(),
                connected: BoundedSet::new(MAX_CONNECTED),
                ids: MessageIdGen::new(),
                pending: HashMap::new(),
                next_tag: 0,
                record_tags: BoundedMap::new(MAX_RECORD_LOOKUPS),
                group_deposits: BoundedMap::new(deposits::MAX_LOOKED_UP),
                record: Publisher::new(),
                last_keepalive: Instant::now(),
                search: None,
                search_build,
                index_ops: Vec::new(),
                last_expiry: Instant::now(),
                scrub: Default::default(),
                push_endpoint,
                push_status: HashMap::new(),
                push_waits: BoundedMap::new(MAX_PUSH_WAITS),
                mailbox_usage,
                waker,
                metrics,
                media: crate::media::Media::spawn(
                    crate::media::files::Dir(cfg.data_dir.join(crate::media::DIR)),
                    net_weak,
                    events.clone(),
                ),
                backups,
                links: Default::default(),
            },
        };
        let task = tokio::spawn(async move {
            engine.run(cmds, net_events, media_rx).await;
            // The engine (and with it the network handle) is gone: the network actor ends,
            // closing its listeners, before the engine counts as stopped, so a node
            // restarted at once can listen on the same addresses.
            let _ = tokio::time::timeout(NET_STOP_WAIT, net_task).await;
        });
        let handle = EngineHandle {
            tx,
            events,
            ctx: crate::command::PrepareCtx {
                media_dir: cfg.data_dir.join(crate::media::DIR),
            },
            metrics: registry,
            #[cfg(feature = "test-hooks")]
            faults,
        };
        Ok((handle, task))
    }

    pub(super) async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut net_events: mpsc::Receiver<NetEvent>,
        mut media: mpsc::Receiver<kith_calls::MediaEvent>,
    ) {
        self.startup();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut republish = tokio::time::interval(REPUBLISH_EVERY);
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            let first = tokio::select! {
                biased;
                ev = net_events.recv() => match ev {
                    Some(ev) => Work::Net(ev),
                    None => break,
                },
                c = cmds.recv() => match c {
                    Some(Cmd::Shutdown(tx)) => { shutdown = Some(tx); break; }
                    Some(c) => Work::Cmd(c),
                    None => break,
                },
                // Call media reports (never audio): a few per second at most.
                Some(ev) = media.recv() => {
                    self.on_media(ev);
                    continue;
                }
                _ = tick.tick() => {
                    self.on_tick();
                    continue;
                }
                _ = republish.tick() => {
                    self.st.record.changed();
                    self.prune();
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP {
                if let Ok(ev) = net_events.try_recv() {
                    batch.push(Work::Net(ev));
                    continue;
                }
                match cmds.try_recv() {
                    Ok(Cmd::Shutdown(tx)) => {
                        shutdown = Some(tx);
                        break;
                    }
                    Ok(c) => batch.push(Work::Cmd(c)),
                    Err(_) => break,
                }
            }
            self.process(batch);
            if shutdown.is_some() {
                break;
            }
        }
        if shutdown.is_some() {
            // A call going on is hung up (the peer is told if the hang-up leaves in time) and
            // its recording finished.
            self.calls_shutdown(&mut media).await;
            // Receipts still waiting for their batch go into the outbox now.
            self.flush_group_receipts(true);
            self.flush_late_certs(true);
            // Text removed since the last scrub leaves the files now.
            self.scrub_if_due();
            // A clean stop: tell connected contacts we are going, and give the goodbyes up
            // to a second to leave.
            let mut waiting: HashSet<u64> = self.presence_goodbye().into_iter().collect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while !waiting.is_empty() {
                match tokio::time::timeout_at(deadline, net_events.recv()).await {
                    Ok(Some(NetEvent::SignalAnswered { tag, .. })) => {
                        waiting.remove(&tag);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        info!("engine stopped");
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
    }

    pub(super) fn startup(&mut self) {
        // Dial our contacts' devices so both sides learn current addresses (not the devices a
        // mailbox serves: they come to it), and queue outboxes.
        let (devices, contacts) = self
            .store
            .read(|r| Ok((r.devices()?, r.contacts()?)))
            .unwrap_or_default();
        let mut people: HashSet<IdentityKey> = contacts.iter().map(|c| c.identity).collect();
        // And this person's other devices (linked), which hear this one's news.
        people.insert(self.st.me);
        for d in devices.into_iter().filter(|d| people.contains(&d.identity)) {
            if let Ok(peer) = PeerId::from_bytes(&d.peer_id) {
                self.st.net_send(NetCommand::Dial {
                    peer,
                    addrs: decode_addrs(&d.addrs),
                });
            }
        }
        // And our mailboxes, so they hand over what they kept while we were away.
        self.st.dial_mailboxes();
        self.resume_downloads();
        self.seal_legacy_media();
        self.resume_deposits();
        for topic in self.st.groups.topics() {
            self.st.net_send(NetCommand::Subscribe { topic });
        }
        self.watch_startup();
        // A history walk to a new device that a restart cut short goes on.
        self.write_then("cannot read the history walk", |st, w, _after| {
            st.load_history_job(w)
        });
        self.write_then(
            "cannot tell the other devices about this one",
            |st, w, after| st.announce_to_own(w, after),
        );
        match self.store.read(|r| r.outbox_devices()) {
            Ok(devs) => {
                for d in devs {
                    self.st.delivery.track(d);
                }
            }
            Err(e) => warn!(error = %e, "cannot read outbox"),
        }
        self.prune();
    }

    pub(super) fn prune(&mut self) {
        // The fallback pre-key's schedule (rotation, retirement of the previous key).
        let st = &mut self.st;
        match self.store.write_as(|w| st.fallback_step(w, now_ms())) {
            Ok(true) => self.st.record.changed(),
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, "cannot rotate the fallback pre-key");
                self.reload_after_failed_commit();
            }
        }
        let before = now_ms().saturating_sub(SEEN_RETENTION_MS);
        if let Err(e) = self.store.write(|w| w.prune_seen(before)) {
            warn!(error = %e, "cannot prune envelope hashes");
        }
        let st = &mut self.st;
        if let Err(e) = self.store.write_as(|w| st.prune_group_frames(w)) {
            warn!(error = %e, "cannot prune group frames");
        }
        if let Some(before) = self.st.mailbox.expiry_cutoff(now_ms()) {
            match self.store.write(|w| w.expire_topic_frames(before)) {
                Ok(0) => {}
                Ok(n) => info!(
                    expired = n,
                    "mailbox dropped group frames past their retention"
                ),
                Err(e) => warn!(error = %e, "cannot expire kept group frames"),
            }
        }
        self.expire_mail();
        self.expire_held();
    }

    /// Drops envelopes a mailbox kept longer than its retention (the mailbox core's cutoff).
    pub(super) fn expire_mail(&mut self) {
        let Some(before) = self.st.mailbox.expiry_cutoff(now_ms()) else {
            return;
        };
        let res = self.store.write(|w| {
            let mut n = 0u64;
            for dev in w.outbox_devices()? {
                for (seq, item) in w.outbox(&dev, usize::MAX)? {
                    if mailbox_core::is_expired(&item, before) {
                        w.take_outbox(&dev, seq)?;
                        n += 1;
                    }
                }
            }
            Ok(n)
        });
        match res {
            Ok(0) => {}
            Ok(n) => info!(
                expired = n,
                "mailbox dropped envelopes past their retention"
            ),
            Err(e) => warn!(error = %e, "cannot expire mailbox envelopes"),
        }
    }

    pub(super) fn on_tick(&mut self) {
        self.st.backlog.flush(&self.st.net);
        self.presence_tick();
        self.group_typing_tick();
        self.calls_tick();
        self.st.turn_tick();
        self.groups_tick();
        self.watch_tick();
        self.chat_tick();
        self.scrub_tick();
        self.backup_tick();
        self.deposits_tick();
        if self.st.record.due(Instant::now()) {
            self.publish_record();
        }
        if self.st.last_keepalive.elapsed() >= MAILBOX_KEEPALIVE {
            self.st.last_keepalive = Instant::now();
            // Also when connected: a dial marks the link as in use, so the network layer
            // does not close it as idle.
            self.st.dial_mailboxes();
            // As a mailbox, likewise the links of devices registered on them (new mail goes
            // out on them at once).
            let peers = self.st.mailbox.registered_peers();
            if !peers.is_empty() {
                self.st.net_send(NetCommand::Keep { peers });
            }
        }
        // The history walk waits (with no write) while the new device's outbox is full.
        if let Some(dev) = self.st.history_due()
            && self
                .store
                .read(|r| r.outbox_len(&dev))
                .is_ok_and(|n| n < crate::actor::devices::HISTORY_IN_FLIGHT)
        {
            self.write_then("cannot hand history to the new device", |st, w, after| {
                st.history_step(w, after)
            });
        }
        self.pump_claimers();
        for d in self.st.delivery.due(Instant::now()) {
            self.pump(d);
        }
    }

    pub(super) fn process(&mut self, batch: Vec<Work>) {
        let mut after: Vec<After> = Vec::new();
        let mut writes: Vec<Work> = Vec::new();
        for w in batch {
            match w {
                Work::Cmd(Cmd::Call(c)) if c.kind() == Kind::Read => {
                    after.push(After::Read(Cmd::Call(c)))
                }
                Work::Net(ev) => {
                    if let Some(ev) = self.on_net_now(ev) {
                        writes.push(Work::Net(ev));
                    }
                }
                other => writes.push(other),
            }
        }
        if self.st.search_build.is_some() {
            // A `search` waits a little for an index still being built from the store.
            let searching = writes
                .iter()
                .any(|w| matches!(w, Work::Cmd(Cmd::Call(c)) if matches!(**c, super::table::Call::Search(..))));
            let wait = if searching {
                super::search::SEARCH_WAIT
            } else {
                std::time::Duration::ZERO
            };
            self.st.poll_search_build(&self.store, wait);
        }
        let mut staged: Vec<After> = Vec::new();
        let ok = if writes.is_empty() {
            true
        } else {
            let st = &mut self.st;
            let started = Instant::now();
            let res = self.store.write_as(|w| {
                for item in writes {
                    st.apply(w, item, &mut staged)?;
                }
                st.take_late_frames(w, &mut staged)?;
                st.mark_index(w)?;
                st.flush_crypto(w)
            });
            self.st
                .metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            match res {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, "store commit failed; nothing in this batch is acknowledged");
                    self.reload_after_failed_commit();
                    false
                }
            }
        };
        self.st.flush_index(ok);
        staged.extend(after);
        for a in staged {
            self.run_after(a, ok);
        }
        // Everything in the cache is on disk now; keep the cache bounded.
        if self.st.sessions.len() > MAX_CACHED_SESSIONS {
            self.st.sessions.clear();
        }
        // Claims that ended in this batch make room for devices waiting to claim.
        self.pump_claimers();
    }

    /// Runs `f` on the state in one write transaction, with the crypto state flushed in the
    /// same transaction, then what it queued. On failure memory is reloaded from
    /// the store and `what` logged. Returns whether it committed.
    pub(super) fn write_then(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut State, &mut WriteTx<'_>, &mut Vec<After>) -> Result<(), Fatal>,
    ) -> bool {
        let st = &mut self.st;
        let mut after = Vec::new();
        let res = self.store.write_as(|w| {
            f(st, w, &mut after)?;
            st.mark_index(w)?;
            st.flush_crypto(w)
        });
        let ok = res.is_ok();
        if let Err(e) = res {
            warn!(error = %e, "{what}");
            self.reload_after_failed_commit();
        }
        self.st.flush_index(ok);
        for a in after {
            self.run_after(a, ok);
        }
        ok
    }

    /// After a failed commit, what memory holds of the store is read again from it, so that
    /// it matches what committed: the crypto state, and the groups' logs (an op taken in
    /// memory but not stored would otherwise be skipped as a duplicate when it comes again).
    pub(super) fn reload_after_failed_commit(&mut self) {
        self.st.groups.reload_logs(&self.store);
        self.st.sessions.clear();
        self.st.dirty_sessions.clear();
        self.st.to_seal.clear();
        self.st.account_dirty = false;
        let peer = self.st.net.local_peer();
        match load_device(&self.store, &self.st.keys, peer) {
            Ok(d) => self.st.device = d,
            Err(e) => warn!(error = %e, "cannot reload device keys"),
        }
    }

    pub(super) fn run_after(&mut self, a: After, ok: bool) {
        match a {
            After::Greet(peer) => {
                if ok {
                    self.presence_connected(peer);
                }
            }
            After::Reply(f) => f(if ok {
                Ok(())
            } else {
                Err(EngineError::Internal("the store could not commit".into()))
            }),
            After::Respond { id, resp } => {
                let resp = if ok {
                    resp
                } else {
                    Response::Refused(Refusal::Internal)
                };
                self.st.net_send(NetCommand::Respond { id, resp });
            }
            After::Net(cmd) if ok => {
                self.st.net_send(cmd);
            }
            After::Event(ev) if ok => {
                if matches!(ev, Event::Message { .. } | Event::GroupMessage { .. }) {
                    self.st.metrics.delivered.inc();
                }
                let _ = self.st.events.send(ev);
            }
            After::Pump(dev) => {
                self.st.delivery.track(dev);
                self.pump(dev);
            }
            After::Read(cmd) => self.read_cmd(cmd),
            After::Media(job) => {
                if ok && !self.st.media.offer(job) {
                    warn!("the media task is busy; a download waits for the next start");
                }
            }
            After::Failed(dev) => self.failed(dev),
            After::Register(mailbox, token, reply) => self.register_with(mailbox, token, reply),
            After::Registered(reply, _) if !ok => {
                let _ = reply.send(Err(EngineError::Internal(
                    "the store could not commit".into(),
                )));
            }
            After::Registered(reply, view) => {
                // Durable, and the mailbox accepted: that is the registration. The record
                // that lists the mailbox was marked changed in the same step and goes out at
                // the next tick (a full Kademlia query and puts, seconds on a big network),
                // retried with backoff when no DHT peer stores it.
                let _ = reply.send(Ok(view));
            }
            After::Wake(url) if ok => {
                if let Some(w) = &self.st.waker {
                    self.st.metrics.wakeups.inc();
                    w.wake(url);
                }
            }
            After::PushAll(_, reply) if !ok => {
                let _ = reply.send(Err(EngineError::Internal(
                    "the store could not commit".into(),
                )));
            }
            After::PushAll(endpoint, reply) => {
                self.st.push_endpoint = endpoint;
                self.st.push_status.clear();
                let mailboxes = self.st.my_mailboxes.clone();
                if mailboxes.is_empty() {
                    let _ = reply.send(Ok(self.st.push_view()));
                    return;
                }
                let wait = self.st.tag();
                let evicted = self.st.push_waits.insert(
                    wait,
                    PushWait {
                        reply,
                        waiting: mailboxes.len(),
                        refused: Vec::new(),
                    },
                );
                if let Some((_, w)) = evicted {
                    let _ = w.reply.send(Err(EngineError::Network(
                        "too many push endpoint changes at once; try again".into(),
                    )));
                }
                for m in mailboxes {
                    self.send_push(m, Some(wait));
                }
            }
            After::SendPush(m) if ok => self.send_push(m, None),
            After::GroupPublish(key, topic, data) if ok => {
                let tag = self.st.tag();
                self.st.publishing(tag, key);
                self.st.net_send(NetCommand::Publish { tag, topic, data });
            }
            After::GroupSync(group, peer) if ok => self.group_sync(group, peer),
            After::Lookup(identity) if ok => self.lookup_identity(identity),
            After::Kept(change) if ok => {
                for cmd in self.st.kept_changed(change) {
                    self.st.net_send(cmd);
                }
            }
            After::TopicSync(group) if ok => self.topic_catch_up(group),
            After::TopicSyncMore(group, peer, floor) if ok => {
                self.topic_sync_more(group, peer, floor)
            }
            After::CallMedia(op) if ok => self.st.calls.media_op(op),
            After::CallMedia(_) => {}
            After::GroupPublish(..) | After::GroupSync(..) | After::Lookup(_) => {}
            After::Kept(_) | After::TopicSync(_) | After::TopicSyncMore(..) => {}
            After::Net(_) | After::Event(_) | After::Wake(_) | After::SendPush(_) => {}
        }
    }
}

impl State {
    pub(super) fn apply(
        &mut self,
        w: &mut WriteTx<'_>,
        work: Work,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        match work {
            Work::Cmd(Cmd::Call(c)) if c.kind() == Kind::Write => (*c).write(self, w, after)?,
            #[cfg(feature = "test-hooks")]
            Work::Cmd(Cmd::Group(c)) => self.group_cmd(w, c, after)?,
            Work::Cmd(other) => after.push(After::Read(other)),
            // A device that just took another identity (linked) answers nothing until it
            // restarts as that identity.
            Work::Net(NetEvent::InboundRequest { id, .. }) if self.links.relinked() => {
                after.push(After::Respond {
                    id,
                    resp: Response::Refused(Refusal::Busy),
                });
            }
            Work::Net(NetEvent::InboundRequest { id, peer, req }) => match req {
                Request::ClaimPrekey => {
                    let bundle = self.claim(peer);
                    after.push(After::Respond {
                        id,
                        resp: Response::Prekey(bundle),
                    });
                }
                Request::Deliver { envelopes } => {
                    let results = self.receive(w, peer, envelopes, after)?;
                    after.push(After::Respond {
                        id,
                        resp: Response::Delivered { results },
                    });
                }
                Request::Register { cert, token } => {
                    let resp = self.register(w, peer, cert, token, None, after)?;
                    after.push(After::Respond { id, resp });
                }
                Request::RegisterProven { cert, token, proof } => {
                    let resp = self.register(w, peer, cert, token, Some(proof), after)?;
                    after.push(After::Respond { id, resp });
                }
                Request::SetPush { endpoint } => {
                    let resp = self.set_push(w, peer, endpoint)?;
                    after.push(After::Respond { id, resp });
                }
                Request::GroupSync { group, have } => {
                    let resp = self.answer_group_sync(w, peer, group, have)?;
                    after.push(After::Respond { id, resp });
                }
                Request::Watch { topics } => {
                    let resp = self.answer_watch(w, peer, topics, after)?;
                    after.push(After::Respond { id, resp });
                }
                Request::TopicSync { topic, have } => {
                    let resp = self.answer_topic_sync(w, peer, &topic, &have)?;
                    after.push(After::Respond { id, resp });
                }
                Request::Link(m) => {
                    let resp = self.on_link_request(w, peer, m)?;
                    after.push(After::Respond { id, resp });
                }
                Request::TurnCredentials => {
                    let resp = self.mailbox.turn_answer(&peer, now_ms() / 1000);
                    after.push(After::Respond { id, resp });
                }
                _ => after.push(After::Respond {
                    id,
                    resp: Response::Refused(Refusal::Invalid),
                }),
            },
            Work::Net(NetEvent::Response {
                tag,
                peer,
                result: Ok(resp),
            }) => {
                if let Some(p) = self.pending.remove(&tag) {
                    self.on_response(w, peer, p, resp, after)?;
                }
            }
            Work::Net(NetEvent::PeerAddrs { peer, addrs }) => {
                let dev = device_key(&peer.to_bytes());
                if let Some(mut d) = w.device(&dev)? {
                    let mut merged: Vec<Vec<u8>> = addrs.iter().map(|a| a.to_vec()).collect();
                    for a in &d.addrs {
                        if !merged.contains(a) {
                            merged.push(a.clone());
                        }
                    }
                    merged.truncate(MAX_DEVICE_ADDRS);
                    if merged != d.addrs {
                        d.addrs = merged;
                        w.put_device(&dev, &d)?;
                    }
                    after.push(After::Pump(dev));
                }
            }
            Work::Net(NetEvent::Gossip {
                id,
                source,
                author,
                topic,
                data,
            }) => {
                self.on_gossip(w, (id, source), author, &topic, &data, after)?;
            }
            Work::Net(NetEvent::GossipSent { tag, result }) => {
                if let Err(e) = &result {
                    debug!(error = %e, "group frame not published now; members fetch it later");
                }
                self.on_published(w, tag, result.is_ok(), after)?;
            }
            Work::Net(NetEvent::Record { tag, value }) => {
                if let (Some(identity), Some(value)) = (self.record_tags.remove(&tag), value) {
                    self.on_record(w, identity, &value, after)?;
                }
            }
            Work::Net(_) => {}
        }
        Ok(())
    }
}
