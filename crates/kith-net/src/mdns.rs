//! LAN discovery with mDNS-SD (the `mdns-sd` crate): each node announces
//! `<peer id>._kith._udp.local.` with its TCP port, and browses for others. Only started
//! when the user has not turned it off (`kith up --no-mdns`); tests run with it off except
//! inside network namespaces they create.

use std::net::IpAddr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

const SERVICE: &str = "_kith._udp.local.";
/// Most discoveries queued for the actor; more are dropped (they repeat).
const QUEUE: usize = 64;

/// Peers found on the LAN, with the addresses they announced.
pub type Discoveries = mpsc::Receiver<(PeerId, Vec<Multiaddr>)>;

/// A running mDNS announcer and browser.
pub struct Mdns {
    daemon: ServiceDaemon,
}

impl std::fmt::Debug for Mdns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mdns")
    }
}

impl Drop for Mdns {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// Starts announcing `peer` on `tcp_port` and browsing for other Kith nodes. Each discovery
/// is a peer id with the addresses it announced.
pub fn start(peer: PeerId, tcp_port: u16) -> Result<(Mdns, Discoveries), String> {
    let daemon = ServiceDaemon::new().map_err(|e| e.to_string())?;
    let name = peer.to_base58();
    let host = format!("kith-{}.local.", &name[name.len().saturating_sub(12)..]);
    let info = ServiceInfo::new(
        SERVICE,
        &name,
        &host,
        "",
        tcp_port,
        None::<std::collections::HashMap<String, String>>,
    )
    .map_err(|e| e.to_string())?
    .enable_addr_auto();
    daemon.register(info).map_err(|e| e.to_string())?;
    let events = daemon.browse(SERVICE).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        while let Ok(ev) = events.recv_async().await {
            let ServiceEvent::ServiceResolved(svc) = ev else {
                continue;
            };
            let Some(instance) = svc.fullname.strip_suffix(&format!(".{SERVICE}")) else {
                continue;
            };
            let Ok(found) = instance.parse::<PeerId>() else {
                continue;
            };
            if found == peer {
                continue;
            }
            let addrs: Vec<Multiaddr> = svc
                .addresses
                .iter()
                .map(|ip| {
                    let proto = match ip.to_ip_addr() {
                        IpAddr::V4(v4) => Protocol::Ip4(v4),
                        IpAddr::V6(v6) => Protocol::Ip6(v6),
                    };
                    Multiaddr::empty().with(proto).with(Protocol::Tcp(svc.port))
                })
                .collect();
            if !addrs.is_empty() && tx.try_send((found, addrs)).is_err() && tx.is_closed() {
                break;
            }
        }
    });
    Ok((Mdns { daemon }, rx))
}
