//! `kith-bootstrap`: the node community operators run for others. One process serves the
//! Kademlia DHT (server mode), a mailbox that keeps envelopes for registered devices while
//! they are offline (with retention, per-device quota and optional invite tokens), the local
//! JSON-RPC API (so `kith --data-dir DIR status` works against it), and Prometheus metrics
//! with a health check over HTTP.
//!
//! It also serves as a circuit relay (v2) for nodes behind NAT, with limits from the
//! configuration, answers AutoNAT probes so nodes learn whether they are reachable, and wakes
//! offline devices through the push endpoints they registered (UnifiedPush-style webhooks).
//!
//! With `[turn]` on, it runs a TURN/STUN server for calls (`turn.rs`): the mailbox hands its
//! registered devices time-limited credentials for it.
//!
//! Exit codes: 0 ok, 1 bad configuration, 2 internal error, 3 network failure.

mod config;
mod metrics;
mod turn;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kith_engine::{Engine, EngineConfig};

use crate::config::Config;

/// Kith bootstrap node: DHT server and mailbox for a community.
#[derive(Debug, Parser)]
#[command(name = "kith-bootstrap", version, about)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print an example configuration and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
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
    if cli.print_config {
        print!("{}", config::EXAMPLE);
        return ExitCode::SUCCESS;
    }
    let Some(path) = cli.config else {
        eprintln!("kith-bootstrap: give --config FILE (see --print-config for an example)");
        return ExitCode::from(1);
    };
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kith-bootstrap: {e:#}");
            return ExitCode::from(1);
        }
    };
    // SAFETY: umask only changes this process's file-creation mask and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0o077);
    }
    few_malloc_arenas();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kith-bootstrap: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(run(cfg))
}

/// glibc's malloc gives threads that contend their own arenas (up to eight per core), and
/// what one arena frees the others do not reuse. A community node's connections are served
/// by every runtime worker in turn, which spreads their buffers over many arenas. Two
/// arenas keep the heap closer to what the connections hold (docs/benchmarks.md, "Trimming
/// the community node"). An operator's own `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` wins.
/// Runs before any other thread starts.
fn few_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; no other thread exists yet, and a
    // refusal (it returns 0) leaves glibc's default.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    };
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KITH_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,libp2p=warn,libp2p_kad=error,libp2p_request_response=error")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cfg: Config) -> ExitCode {
    let turn = match cfg.turn.clone() {
        Some(t) => match turn::Turn::start(t).await {
            Ok(t) => {
                tracing::info!(bound = %t.bound, "TURN/STUN on udp {}", t.bound);
                Some(t)
            }
            Err(e) => {
                eprintln!("kith-bootstrap: cannot start the TURN server: {e:#}");
                return ExitCode::from(3);
            }
        },
        None => None,
    };
    let mut mailbox = cfg.mailbox_config();
    mailbox.turn = turn.as_ref().map(turn::Turn::offer);
    let engine_cfg = EngineConfig {
        store_cache: kith_engine::DEFAULT_STORE_CACHE,
        data_dir: cfg.data_dir.clone(),
        listen: cfg.listen.clone(),
        bootstrap: cfg.bootstrap.clone(),
        mdns: false,
        mailbox: Some(mailbox),
        reach: cfg.reach_config(),
        store_fsync: true,
        calls: Default::default(),
        net: kith_engine::NetOptions {
            limits: cfg.net_limits(),
            // No relay client or hole punching on its connections (it holds no relay slots
            // and is reachable by itself): less memory per connected device.
            community: true,
            ..Default::default()
        },
    };
    let (engine, task) = match Engine::start(engine_cfg).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("kith-bootstrap: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let sock = cfg.data_dir.join(kith_api::SOCKET_NAME);
    let api = match kith_api::serve(engine.clone(), &sock).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "kith-bootstrap: cannot open the API socket {}: {e}",
                sock.display()
            );
            engine.shutdown().await;
            return ExitCode::from(2);
        }
    };
    let metrics = match cfg.metrics {
        Some(addr) => match metrics::serve(
            engine.clone(),
            addr,
            turn.as_ref().map(|t| std::sync::Arc::clone(&t.stats)),
        )
        .await
        {
            Ok((bound, h)) => {
                tracing::info!(%bound, "metrics on http://{bound}/metrics, health on /health");
                Some(h)
            }
            Err(e) => {
                eprintln!("kith-bootstrap: cannot serve metrics on {addr}: {e}");
                engine.shutdown().await;
                return ExitCode::from(3);
            }
        },
        None => None,
    };
    match engine.info().await {
        Ok(info) => {
            println!("{}", info.code);
            for a in &info.addrs {
                println!("{a}");
            }
        }
        Err(e) => eprintln!("kith-bootstrap: {e}"),
    }
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kith-bootstrap: cannot watch for signals: {e}");
            return ExitCode::from(2);
        }
    };
    let code = tokio::select! {
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        _ = term.recv() => ExitCode::SUCCESS,
        _ = task => {
            eprintln!("kith-bootstrap: the node stopped unexpectedly");
            ExitCode::from(2)
        }
    };
    tracing::info!("stopping");
    api.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(t) = turn {
        t.stop().await;
    }
    engine.shutdown().await;
    let _ = std::fs::remove_file(&sock);
    code
}
