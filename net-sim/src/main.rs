//! `net-sim run SCENARIO.toml [--json] [--quiet]`: runs a scenario (see the library docs and
//! `net-sim/README.md`) and prints its report, as text or as one JSON object, with progress
//! lines on stderr. Exit codes: 0 the scenario's expectations held, 1 a bad scenario file or
//! arguments, 2 a node failed to run, 4 an expectation failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kith_net_sim::{
    GossipScenario, GroupScenario, Scenario, run_gossip, run_group, run_with_progress,
};

/// Many Kith nodes in one process, with churn and partitions from a seed.
#[derive(Debug, Parser)]
#[command(name = "net-sim", version, about, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

const LONG_ABOUT: &str = "\
Many Kith nodes in one process, with churn and partitions from a seed.

A scenario is a TOML file (net-sim/README.md has them all): name, seed, nodes, mailboxes,
pairs, messages, send_over_ms, transport (memory or tcp), and the sections
  [churn]        fraction, down_at_ms, down_for_ms, gone_for_good
  [[partition]]  at_ms, heal_ms
  [links]        latency_ms, jitter_ms, loss, rto_ms, bandwidth_kbps, idle_ms
                 (memory links; a lost chunk arrives one rto_ms late, order is kept)
  [dht]          lookups, bootstrap_every_s, bootstraps
  [expect]       delivered, duplicates, settle_ms, lookups_found

Exit codes: 0 the expectations held, 1 a bad scenario or arguments, 2 a node failed to
run, 4 an expectation failed.";

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a scenario file and report.
    Run {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// No progress lines on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run a group scenario file (one group, members churning, a removal) and report.
    Group {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// No progress lines on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run a gossip scenario file (one big group's gossip layer alone) and report.
    Gossip {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Which kind of scenario a command runs.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Run,
    Group,
    Gossip,
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
    let (scenario, json, quiet, kind) = match cli.cmd {
        Cmd::Run {
            scenario,
            json,
            quiet,
        } => (scenario, json, quiet, Kind::Run),
        Cmd::Group {
            scenario,
            json,
            quiet,
        } => (scenario, json, quiet, Kind::Group),
        Cmd::Gossip { scenario, json } => (scenario, json, true, Kind::Gossip),
    };
    let text = match std::fs::read_to_string(&scenario) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("net-sim: cannot read {}: {e}", scenario.display());
            return ExitCode::from(1);
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KITH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    raise_fd_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("net-sim: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // Progress on stderr, unless --quiet.
    let progress = |line: &str| {
        if !quiet {
            eprintln!("net-sim: {line}");
        }
    };
    let outcome = match kind {
        Kind::Group => GroupScenario::parse(&text).map(|s| {
            rt.block_on(run_group(&s))
                .map(|r| (serde_json::to_string(&r), r.text(), r.failures()))
        }),
        Kind::Gossip => GossipScenario::parse(&text).map(|s| {
            rt.block_on(run_gossip(&s))
                .map(|r| (serde_json::to_string(&r), r.text(), r.failures()))
        }),
        Kind::Run => Scenario::parse(&text).map(|s| {
            rt.block_on(run_with_progress(&s, &progress))
                .map(|r| (serde_json::to_string(&r), r.text(), r.failures(&s)))
        }),
    };
    let (as_json, as_text, failures) = match outcome {
        Err(e) => {
            eprintln!("net-sim: {}: {e}", scenario.display());
            return ExitCode::from(1);
        }
        Ok(Err(e)) => {
            eprintln!("net-sim: {e}");
            return ExitCode::from(2);
        }
        Ok(Ok(r)) => r,
    };
    if json {
        match as_json {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("net-sim: {e}"),
        }
    } else {
        println!("{as_text}");
    }
    for f in &failures {
        eprintln!("net-sim: FAILED: {f}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    }
}

/// Many nodes hold many files and sockets: raise the soft open-file limit to the hard one.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer,
    // which lives on this stack frame for the duration of the calls.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                eprintln!("net-sim: cannot raise the open-file limit; big scenarios may fail");
            }
        }
    }
}
