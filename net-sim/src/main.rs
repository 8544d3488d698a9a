//! `net-sim run SCENARIO.toml [--json]`: runs a scenario (see the library docs) and prints
//! its report, as text or as one JSON object. Exit codes: 0 the scenario's expectations
//! held, 1 a bad scenario file or arguments, 2 a node failed to run, 4 an expectation failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kith_net_sim::{GroupScenario, Scenario, run, run_group};

/// Many Kith nodes in one process, with churn and partitions from a seed.
#[derive(Debug, Parser)]
#[command(name = "net-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a scenario file and report.
    Run {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a group scenario file (one group, members churning, a removal) and report.
    Group {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
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
    let (scenario, json, group) = match cli.cmd {
        Cmd::Run { scenario, json } => (scenario, json, false),
        Cmd::Group { scenario, json } => (scenario, json, true),
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
    let outcome = if group {
        GroupScenario::parse(&text).map(|s| {
            rt.block_on(run_group(&s))
                .map(|r| (serde_json::to_string(&r), r.text(), r.failures()))
        })
    } else {
        Scenario::parse(&text).map(|s| {
            rt.block_on(run(&s))
                .map(|r| (serde_json::to_string(&r), r.text(), r.failures(&s)))
        })
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
