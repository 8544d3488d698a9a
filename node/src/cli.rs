use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use kith_api::methods::{self, AddContactParams, HistoryParams, NoParams, SendParams, WithContact};
use kith_api::{Client, ClientError, SOCKET_NAME};
use kith_engine::{Engine, EngineConfig};

use crate::args::{
    Cli, Command, ContactsCmd, GroupCmd, MailboxCmd, PrivacyCmd, ProfileCmd, PushCmd,
};
use crate::output::Out;
use crate::safe::printable;

fn data_dir(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match arg {
        Some(d) => Ok(d),
        None => dirs::data_dir()
            .map(|d| d.join("kith"))
            .context("cannot find a data directory; pass --data-dir or set KITH_HOME"),
    }
}

/// Restricts files this process creates to its owner (keys, store, socket).
fn restrict_umask() {
    // SAFETY: umask only changes this process's file-creation mask and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0o077);
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    restrict_umask();
    let out = Out::new(cli.json);
    let cmd = match cli.cmd {
        Some(cmd) => cmd,
        None => Command::Chat {
            name: None,
            mouse: cli.mouse,
        },
    };
    if let Command::Chat { name: None, .. } = cmd
        && (cli.json || !crate::tui::on_terminal())
    {
        out.error(
            "the full-screen chat needs a terminal (and no --json); see `kith --help`, \
             or `kith chat NAME` for a line-mode conversation",
        );
        return ExitCode::from(1);
    }
    match &cmd {
        Command::Completions { shell } => return crate::setup::completions(*shell),
        Command::Man => return crate::setup::man(&out),
        _ => {}
    }
    let dir = match data_dir(cli.data_dir) {
        Ok(d) => d,
        Err(e) => {
            out.error(&format!("{e:#}"));
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out.error(&format!("cannot start the runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        match cmd {
            Command::Up {
                detach: true,
                passphrase_file,
                ..
            } => crate::setup::detach(&out, &dir, passphrase_file.as_deref()).await,
            Command::Up {
                detach: false,
                passphrase_file,
                listen,
                bootstrap,
                no_mdns,
                no_listen,
                relay,
                relay_server,
                private_ips,
                external,
                mailbox,
                mailbox_quota,
                mailbox_retention,
                mailbox_quota_bytes,
                mailbox_media_bytes,
                push_allow_private,
                push_allow_http,
                mailbox_token,
                mailbox_max_devices,
                mailbox_devices_per_identity,
                mailbox_topics_per_device,
                requests_per_minute,
                request_streams,
                dht_records,
                dht_puts_per_hour,
                call_bind,
                ring_timeout,
                story_lifetime_secs,
            } => {
                if let Some(secs) = story_lifetime_secs {
                    kith_engine::set_story_lifetime_ms(secs.saturating_mul(1000));
                }
                let tokens = (!mailbox_token.is_empty()).then_some(mailbox_token);
                if let Some(t) = &tokens {
                    if !mailbox {
                        out.error("--mailbox-token needs --mailbox");
                        return ExitCode::from(1);
                    }
                    if let Err(e) = kith_engine::check_invite_tokens(t) {
                        out.error(e);
                        return ExitCode::from(1);
                    }
                }
                let limits = kith_engine::NetLimits {
                    requests_per_minute: requests_per_minute.max(1),
                    request_streams: request_streams.max(1),
                    dht_records: dht_records.max(1),
                    dht_puts_per_hour: dht_puts_per_hour.max(1),
                    ..kith_engine::NetLimits::default()
                };
                let mailbox = mailbox.then(|| kith_engine::MailboxConfig {
                    tokens,
                    max_devices: mailbox_max_devices.max(1),
                    max_devices_per_identity: mailbox_devices_per_identity.max(1),
                    topics_per_device: mailbox_topics_per_device,
                    quota: mailbox_quota.max(1),
                    retention: std::time::Duration::from_secs(mailbox_retention.max(1)),
                    max_bytes: mailbox_quota_bytes.max(1),
                    media_bytes: mailbox_media_bytes,
                    push: kith_engine::PushPolicy {
                        allow_private: push_allow_private,
                        allow_http: push_allow_http,
                    },
                    turn: None,
                    ..kith_engine::MailboxConfig::default()
                });
                let listen = if no_listen {
                    Listen::Nowhere
                } else {
                    Listen::On(listen)
                };
                let net = NetArgs {
                    listen,
                    bootstrap,
                    relay,
                    relay_server,
                    private_ips,
                    external,
                    mdns: !no_mdns,
                    limits,
                    call_bind,
                    ring_timeout,
                };
                up(&out, dir, net, mailbox, passphrase_file.as_deref()).await
            }
            Command::Passphrase(cmd) => ExitCode::from(crate::passphrase_cmd::run(&out, &dir, cmd)),
            Command::Backup(crate::backup_cmd::BackupCmd::Restore {
                file,
                passphrase_file,
            }) => ExitCode::from(crate::backup_cmd::restore(
                &out,
                &dir,
                &file,
                passphrase_file.as_deref(),
            )),
            cmd => {
                if let Err(e) = check(&cmd) {
                    out.error(&e);
                    return ExitCode::from(1);
                }
                match client_cmd(&out, &dir, cmd).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        out.error(&e.to_string());
                        ExitCode::from(e.exit_code() as u8)
                    }
                }
            }
        }
    })
}

/// Argument combinations clap cannot express, checked before talking to the daemon.
fn check(cmd: &Command) -> Result<(), String> {
    match cmd {
        Command::Send {
            group: Some(_),
            text: Some(_),
            ..
        } => Err("with --group, give only the text: kith send --group GROUP TEXT".into()),
        Command::Send {
            group: None,
            text: None,
            file: None,
            voice: None,
            ..
        } => Err("give a contact and a text: kith send NAME TEXT".into()),
        Command::Send {
            group: Some(_),
            name: Some(_),
            file,
            voice,
            ..
        } if file.is_some() || voice.is_some() => {
            Err("with --group and a file, give no text: kith send --group GROUP --file PATH".into())
        }
        Command::Send {
            group: Some(_),
            name: None,
            file: None,
            voice: None,
            ..
        } => Err("give the text: kith send --group GROUP TEXT".into()),
        Command::Disappear {
            group: Some(_),
            timer: Some(_),
            ..
        } => Err("with --group, give only the timer: kith disappear --group GROUP TIMER".into()),
        Command::Disappear {
            group: None,
            timer: None,
            ..
        } => Err("give a contact and a timer: kith disappear NAME 5m".into()),
        _ => Ok(()),
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KITH_LOG").unwrap_or_else(|_| {
        EnvFilter::new(
            "info,libp2p=warn,libp2p_kad=error,libp2p_request_response=error,mdns_sd=warn",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Where `kith up` listens.
#[derive(Debug)]
enum Listen {
    /// These addresses (none given: all interfaces, TCP and QUIC, random ports).
    On(Vec<String>),
    /// Nowhere: dial out only.
    Nowhere,
}

/// The networking flags of `kith up`.
#[derive(Debug)]
struct NetArgs {
    listen: Listen,
    bootstrap: Vec<String>,
    relay: Vec<String>,
    relay_server: bool,
    private_ips: bool,
    external: Vec<String>,
    mdns: bool,
    limits: kith_engine::NetLimits,
    call_bind: std::net::IpAddr,
    ring_timeout: u64,
}

async fn up(
    out: &Out,
    dir: PathBuf,
    net: NetArgs,
    mailbox: Option<kith_engine::MailboxConfig>,
    passphrase_file: Option<&std::path::Path>,
) -> ExitCode {
    init_logging();
    let passphrase = match crate::passphrase_cmd::for_up(&dir, passphrase_file) {
        Ok(p) => p,
        Err(e) => {
            out.error(&e);
            return ExitCode::from(1);
        }
    };
    let parse = |v: Vec<String>, what: &str| -> Result<Vec<kith_engine::Multiaddr>, String> {
        v.iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| format!("{what} address {s:?} is not a multiaddr: {e}"))
            })
            .collect()
    };
    let listen = match net.listen {
        Listen::On(l) if l.is_empty() => vec![
            "/ip4/0.0.0.0/tcp/0".to_string(),
            "/ip4/0.0.0.0/udp/0/quic-v1".to_string(),
        ],
        Listen::On(l) => l,
        Listen::Nowhere => Vec::new(),
    };
    let (listen, bootstrap, relays, external) = match (
        parse(listen, "listen"),
        parse(net.bootstrap, "bootstrap"),
        parse(net.relay, "relay"),
        parse(net.external, "external"),
    ) {
        (Ok(l), Ok(b), Ok(r), Ok(x)) => (l, b, r, x),
        (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
            out.error(&e);
            return ExitCode::from(1);
        }
    };
    let cfg = EngineConfig {
        store_cache: kith_engine::DEFAULT_STORE_CACHE,
        data_dir: dir.clone(),
        listen,
        bootstrap,
        mdns: net.mdns,
        mailbox,
        reach: kith_engine::ReachConfig {
            relays,
            relay_server: net
                .relay_server
                .then(kith_engine::RelayServerConfig::default),
            private_ips: net.private_ips,
            external,
        },
        store_fsync: true,
        calls: kith_engine::CallConfig {
            bind: net.call_bind,
            ring: std::time::Duration::from_secs(net.ring_timeout.max(1)),
        },
        net: kith_engine::NetOptions {
            limits: net.limits,
            ..Default::default()
        },
    };
    let started =
        Engine::start_with_passphrase(cfg, passphrase.as_ref().map(|p| p.as_bytes())).await;
    drop(passphrase);
    let (engine, task) = match started {
        Ok(x) => x,
        Err(e) => {
            out.error(&e.to_string());
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let sock = dir.join(SOCKET_NAME);
    let server = match kith_api::serve(engine.clone(), &sock).await {
        Ok(s) => s,
        Err(e) => {
            out.error(&format!(
                "cannot open the API socket {}: {e}",
                sock.display()
            ));
            engine.shutdown().await;
            return ExitCode::from(2);
        }
    };
    match engine.info().await {
        Ok(info) => out.node_up(&info, &sock),
        Err(e) => out.error(&e.to_string()),
    }
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            out.error(&format!("cannot watch for signals: {e}"));
            return ExitCode::from(2);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = task => {
            out.error("the node stopped unexpectedly");
            let _ = std::fs::remove_file(&sock);
            return ExitCode::from(2);
        }
    }
    tracing::info!("stopping");
    server.abort();
    engine.shutdown().await;
    let _ = std::fs::remove_file(&sock);
    ExitCode::SUCCESS
}

async fn client_cmd(out: &Out, dir: &std::path::Path, cmd: Command) -> Result<(), ClientError> {
    let mut c = Client::connect(&dir.join(SOCKET_NAME)).await?;
    match cmd {
        Command::Up { .. } | Command::Passphrase(_) => {}
        Command::Id => out.id(&c.call::<methods::Id>(NoParams {}).await?),
        Command::Contacts(ContactsCmd::Add { code, name }) => {
            let v = c
                .call::<methods::ContactsAdd>(AddContactParams { code, name })
                .await?;
            out.contact_added(&v);
        }
        Command::Contacts(ContactsCmd::Remove { name }) => {
            let v = c
                .call::<methods::ContactsRemove>(methods::RemoveContactParams { name })
                .await?;
            out.contact_removed(&v);
        }
        Command::Mailbox(MailboxCmd::Add { code, token }) => {
            let v = c
                .call::<methods::MailboxAdd>(methods::AddMailboxParams { code, token })
                .await?;
            out.mailbox_added(&v);
        }
        Command::Mailbox(MailboxCmd::List) => {
            out.mailboxes(&c.call::<methods::MailboxList>(NoParams {}).await?)
        }
        Command::Push { cmd } => {
            let v = match cmd {
                None => c.call::<methods::PushGet>(NoParams {}).await?,
                Some(PushCmd::Set { url }) => {
                    c.call::<methods::PushSet>(methods::SetPushParams { endpoint: url })
                        .await?
                }
                Some(PushCmd::Clear) => c.call::<methods::PushClear>(NoParams {}).await?,
            };
            out.push(&v);
        }
        Command::Contacts(ContactsCmd::List) => {
            out.contacts(&c.call::<methods::ContactsList>(NoParams {}).await?)
        }
        Command::Send {
            group,
            name,
            file,
            voice,
            caption,
            ..
        } if file.is_some() || voice.is_some() => {
            let (path, voice) = match (file, voice) {
                (Some(f), _) => (f, false),
                (None, Some(v)) => (v, true),
                (None, None) => return Ok(()),
            };
            let path = std::path::absolute(&path)
                .unwrap_or(path)
                .display()
                .to_string();
            let caption = caption.unwrap_or_default();
            let v = match (group, name) {
                (Some(group), _) => {
                    c.call::<methods::GroupSendFile>(methods::GroupSendFileParams {
                        group,
                        path,
                        caption,
                        voice,
                        manifest: None,
                    })
                    .await?
                }
                (None, Some(to)) => {
                    c.call::<methods::SendFile>(methods::SendFileParams {
                        to,
                        path,
                        caption,
                        voice,
                        manifest: None,
                    })
                    .await?
                }
                (None, None) => {
                    return Err(usage("give a contact: kith send NAME --file PATH".into()));
                }
            };
            out.sent(&v);
        }
        Command::Save { id, to, thumbnail } => {
            crate::media_cmd::save(out, &mut c, id, to, thumbnail).await?
        }
        Command::Download { id } => crate::media_cmd::download(out, &mut c, id).await?,
        Command::Media { cmd } => crate::media_cmd::media(out, &mut c, cmd).await?,
        Command::Send {
            group,
            name: Some(name),
            text,
            reply_to: Some(reply_to),
            ..
        } => {
            let (chat, text) = match (group, text) {
                (Some(g), None) => (chat_params(None, Some(g)), name),
                (None, Some(t)) => (chat_params(Some(name), None), t),
                _ => return Ok(()),
            };
            let v = c
                .call::<methods::MessageSend>(methods::ChatSendParams {
                    chat,
                    text,
                    reply_to: Some(reply_to),
                })
                .await?;
            out.sent(&v);
        }
        Command::Send {
            group: Some(group),
            name: Some(text),
            text: None,
            reply_to: None,
            ..
        } => {
            let v = c
                .call::<methods::GroupSend>(methods::GroupSendParams { group, text })
                .await?;
            out.sent(&v);
        }
        Command::Send {
            group: None,
            name: Some(name),
            text: Some(text),
            reply_to: None,
            ..
        } => {
            let v = c
                .call::<methods::Send>(SendParams { to: name, text })
                .await?;
            out.sent(&v);
        }
        Command::History {
            group: Some(group),
            limit,
            ..
        } => {
            let v = c
                .call::<methods::GroupHistory>(methods::GroupHistoryParams { group, limit })
                .await?;
            out.group_history(&v);
        }
        Command::History {
            name: Some(name),
            limit,
            ..
        } => {
            let v = c
                .call::<methods::History>(HistoryParams { with: name, limit })
                .await?;
            out.history(&v);
        }
        Command::Send { .. } | Command::History { .. } => {
            // Refused by `check` and clap before the daemon is asked.
        }
        Command::Group(cmd) => group_cmd(out, &mut c, cmd).await?,
        Command::Groups => out.groups(&c.call::<methods::Groups>(NoParams {}).await?),
        Command::Receipts { id } => {
            let v = c
                .call::<methods::Receipts>(methods::ReceiptsParams { id })
                .await?;
            out.receipts(&v);
        }
        Command::Read { name } => {
            let v = c.call::<methods::Read>(WithContact { with: name }).await?;
            out.read(&v);
        }
        Command::Verify { name } => {
            let v = c
                .call::<methods::Verify>(WithContact { with: name })
                .await?;
            out.verify(&v);
        }
        Command::Status { story: None } => {
            out.status(&c.call::<methods::Status>(NoParams {}).await?)
        }
        Command::Status { story: Some(cmd) } => crate::stories::run(out, &mut c, cmd).await?,
        Command::Typing {
            name,
            group,
            recording,
            stop,
        } => {
            let state = if stop {
                "stopped"
            } else if recording {
                "recording"
            } else {
                "typing"
            };
            if group {
                c.call::<methods::GroupTyping>(methods::GroupTypingParams {
                    group: name,
                    state: state.into(),
                })
                .await?;
            } else {
                c.call::<methods::Typing>(methods::TypingParams {
                    with: name,
                    state: state.into(),
                })
                .await?;
            }
            out.done(state);
        }
        Command::Profile { cmd } => {
            let v = match cmd {
                None => c.call::<methods::ProfileGet>(NoParams {}).await?,
                Some(ProfileCmd::Set {
                    name,
                    about,
                    avatar,
                    no_avatar,
                }) => {
                    // The daemon reads the photo: give it a full path.
                    let avatar = match avatar {
                        Some(p) => Some(std::path::absolute(&p).map_err(ClientError::Io)?),
                        None => None,
                    };
                    c.call::<methods::ProfileSet>(methods::SetProfileParams {
                        name,
                        about,
                        avatar,
                        remove_avatar: no_avatar,
                        photo: None,
                    })
                    .await?
                }
            };
            out.profile(&v);
        }
        Command::Privacy { cmd } => {
            let v = match cmd {
                None => c.call::<methods::PrivacyGet>(NoParams {}).await?,
                Some(PrivacyCmd::Set { key, value }) => {
                    c.call::<methods::PrivacySet>(methods::SetPrivacyParams { key, value })
                        .await?
                }
            };
            out.privacy(&v);
        }
        Command::Block { name } => {
            let v = c
                .call::<methods::Block>(methods::BlockParams { name })
                .await?;
            out.blocked(&v);
        }
        Command::Unblock { name } => {
            let v = c
                .call::<methods::Unblock>(methods::BlockParams { name })
                .await?;
            out.blocked(&v);
        }
        Command::Watch => {
            c.watch().await?;
            while let Some(ev) = c.next_event().await? {
                out.event(&ev);
            }
        }
        Command::Chat {
            name: Some(name), ..
        } => crate::line_chat::run(out, dir, c, name).await?,
        Command::Chat {
            name: None, mouse, ..
        } => crate::tui::run(dir, c, mouse).await?,
        Command::Calls(cmd) => {
            let code = crate::calls::run(out, &mut c, &dir.join(SOCKET_NAME), cmd).await?;
            if code != 0 {
                std::process::exit(code);
            }
        }
        Command::Backup(cmd) => crate::backup_cmd::run(out, &mut c, cmd).await?,
        Command::Link { name, no_wait } => {
            crate::devices_cmd::link(out, &mut c, name, no_wait, dir).await?
        }
        Command::Devices { cmd } => crate::devices_cmd::run(out, &mut c, cmd, dir).await?,
        Command::Photo { contact, to } => {
            if to.exists() {
                return Err(usage(format!("{} exists already", to.display())));
            }
            let to = std::path::absolute(&to)?;
            let size = c
                .call::<methods::ContactPhoto>(methods::ContactPhotoParams {
                    contact,
                    to: to.clone(),
                })
                .await?;
            if out.json {
                crate::output::json_line(&serde_json::json!({ "path": to, "size": size }));
            } else {
                crate::output::line(&format!("Saved {} ({size} bytes).", to.display()));
            }
        }
        Command::Completions { .. } | Command::Man => {}
        cmd => crate::actions::run(out, &mut c, cmd).await?,
    }
    Ok(())
}

/// A chat by contact name or group.
pub(crate) fn chat_params(to: Option<String>, group: Option<String>) -> methods::ChatParams {
    methods::ChatParams { to, group }
}

/// `kith group …`.
/// A usage error (exit code 1).
pub(crate) fn usage(message: String) -> ClientError {
    ClientError::Rpc { code: 1, message }
}

async fn group_cmd(out: &Out, c: &mut Client, cmd: GroupCmd) -> Result<(), ClientError> {
    use methods::{GroupMemberParams as M, GroupParams as G};
    let m = |group: String, member: String| M { group, member };
    match cmd {
        GroupCmd::Create { name, members } => {
            let v = c
                .call::<methods::GroupCreate>(methods::GroupCreateParams { name, members })
                .await?;
            out.group_created(&v);
        }
        GroupCmd::Add { group, contact } => {
            let v = c
                .call::<methods::GroupAdd>(m(group, contact.clone()))
                .await?;
            out.group_changed(&format!("Added {contact} to {}.", printable(&v.name)), &v);
        }
        GroupCmd::Remove { group, contact } => {
            let v = c
                .call::<methods::GroupRemove>(m(group, contact.clone()))
                .await?;
            out.group_changed(
                &format!("Removed {contact} from {}.", printable(&v.name)),
                &v,
            );
        }
        GroupCmd::Promote { group, contact } => {
            let v = c
                .call::<methods::GroupPromote>(m(group, contact.clone()))
                .await?;
            out.group_changed(
                &format!("{contact} is now an admin of {}.", printable(&v.name)),
                &v,
            );
        }
        GroupCmd::Demote { group, contact } => {
            let v = c
                .call::<methods::GroupDemote>(m(group, contact.clone()))
                .await?;
            out.group_changed(
                &format!("{contact} is no longer an admin of {}.", printable(&v.name)),
                &v,
            );
        }
        GroupCmd::Rename { group, name } => {
            let v = c
                .call::<methods::GroupRename>(methods::GroupRenameParams { group, name })
                .await?;
            out.group_changed(&format!("Renamed the group to {}.", printable(&v.name)), &v);
        }
        GroupCmd::Describe { group, text } => {
            let v = c
                .call::<methods::GroupDescribe>(methods::GroupDescribeParams { group, text })
                .await?;
            out.group_changed(
                &format!("Changed the description of {}.", printable(&v.name)),
                &v,
            );
        }
        GroupCmd::Leave { group } => {
            let v = c.call::<methods::GroupLeave>(G { group }).await?;
            out.group_changed(
                &format!(
                    "You left {}. `kith group delete {}` forgets it.",
                    printable(&v.name),
                    crate::output::id_prefix(&v.id)
                ),
                &v,
            );
        }
        GroupCmd::Delete { group } => {
            let v = c.call::<methods::GroupDelete>(G { group }).await?;
            out.group_changed(&format!("Deleted {}.", printable(&v.name)), &v);
        }
        GroupCmd::Info { group } => {
            out.group_info(&c.call::<methods::GroupInfo>(G { group }).await?);
        }
        GroupCmd::Read { group } => {
            out.read(&c.call::<methods::GroupRead>(G { group }).await?);
        }
    }
    Ok(())
}
