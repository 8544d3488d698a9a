//! `kith backup create|restore|schedule`.
//!
//! `create` and `schedule` ask the running node (it holds the store); `restore` runs
//! without a node, into an empty data directory. The passphrase comes from
//! `--passphrase-file` (its first line), or `KITH_BACKUP_PASSPHRASE`, or is asked on the
//! terminal without echo (twice when it seals something new).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use kith_api::methods::{self, BackupCreateParams, BackupScheduleParams, NoParams, Passphrase};
use kith_api::{Client, ClientError};

use crate::cli::usage;
use crate::output::Out;

/// The environment variable a passphrase may come from (for services and scripts).
pub const PASSPHRASE_ENV: &str = "KITH_BACKUP_PASSPHRASE";

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCmd {
    /// Write an encrypted backup of this node (keys, contacts, groups, history, media) to a
    /// file, while the node runs.
    Create {
        /// The backup file to write.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Read the passphrase from this file's first line instead of asking.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Restore a backup into an empty data directory (`--data-dir`), with no node running
    /// there. The whole file is checked before anything is written.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Read the passphrase from this file's first line instead of asking.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Make backups into a folder at an interval, keeping the newest few; without
    /// arguments, show the schedule.
    Schedule {
        /// The folder backups go to.
        #[arg(long, value_name = "DIR", required_unless_present = "off")]
        dir: Option<PathBuf>,
        /// How often: a number with s, m, h or d (`1d`, `12h`); at least one minute.
        #[arg(long, value_name = "INTERVAL", default_value = "1d")]
        every: String,
        /// How many of the newest backups to keep.
        #[arg(long, value_name = "N", default_value_t = 7)]
        keep: u32,
        /// Read the passphrase from this file's first line instead of asking.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Turn scheduled backups off.
        #[arg(long, conflicts_with = "dir")]
        off: bool,
    },
    /// Show the backup schedule and how its last run went.
    Status,
}

/// Parses `30s`, `15m`, `12h`, `1d` (or plain seconds).
pub(crate) fn parse_interval(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The passphrase: from the file, the environment, or the terminal (`confirm`: asked twice).
pub(crate) fn passphrase(file: Option<&Path>, confirm: bool) -> Result<Passphrase, String> {
    let p = if let Some(f) = file {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        text.lines().next().unwrap_or("").to_string()
    } else if let Ok(v) = std::env::var(PASSPHRASE_ENV) {
        v
    } else {
        let first = rpassword::prompt_password("Backup passphrase: ").map_err(|e| {
            format!("cannot ask for a passphrase (no terminal? use --passphrase-file): {e}")
        })?;
        if confirm {
            let again = rpassword::prompt_password("Again: ")
                .map_err(|e| format!("cannot ask for a passphrase: {e}"))?;
            if again != first {
                return Err("the passphrases differ".into());
            }
        }
        first
    };
    if p.is_empty() {
        return Err("the passphrase is empty".into());
    }
    Ok(Passphrase(p))
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// `kith backup create|schedule|status` (through the running node).
pub(crate) async fn run(out: &Out, c: &mut Client, cmd: BackupCmd) -> Result<(), ClientError> {
    match cmd {
        BackupCmd::Create {
            to,
            passphrase_file,
        } => {
            let to = absolute(&to).map_err(usage)?;
            let passphrase = passphrase(passphrase_file.as_deref(), true).map_err(usage)?;
            let done = c
                .call::<methods::BackupCreate>(BackupCreateParams { to, passphrase })
                .await?;
            if out.json() {
                out.json_value(&done);
            } else {
                out.text(&format!(
                    "backup written to {} ({} rows, {} files, {} bytes)",
                    done.path.display(),
                    done.rows,
                    done.files,
                    done.bytes
                ));
            }
        }
        BackupCmd::Schedule {
            dir,
            every,
            keep,
            passphrase_file,
            off,
        } => {
            let params = if off {
                BackupScheduleParams::new(PathBuf::new(), 0, 0, Passphrase::default())
            } else {
                let dir = dir.ok_or_else(|| usage("--dir is needed".into()))?;
                let every_secs = parse_interval(&every).filter(|s| *s >= 60).ok_or_else(|| {
                    usage(format!("not an interval of a minute or more: {every}"))
                })?;
                let dir = absolute(&dir).map_err(usage)?;
                let passphrase = passphrase(passphrase_file.as_deref(), true).map_err(usage)?;
                BackupScheduleParams::new(dir, every_secs, keep, passphrase)
            };
            let v = c.call::<methods::BackupSchedule>(params).await?;
            show(out, &v);
        }
        BackupCmd::Status => {
            let v = c.call::<methods::BackupScheduleGet>(NoParams {}).await?;
            show(out, &v);
        }
        BackupCmd::Restore { .. } => {}
    }
    Ok(())
}

fn show(out: &Out, v: &methods::BackupScheduleView) {
    if out.json() {
        out.json_value(v);
        return;
    }
    match &v.dir {
        Some(d) if v.on => {
            out.text(&format!(
                "backups every {} s into {}, keeping {}",
                v.every_secs,
                d.display(),
                v.keep
            ));
            if let Some(ms) = v.last_ms {
                out.text(&format!("last run: {ms} ms since the epoch"));
            }
            if let Some(e) = &v.last_error {
                out.text(&format!("last run failed: {e}"));
            }
        }
        _ => out.text("scheduled backups are off"),
    }
}

/// `kith backup restore FILE` into `dir` (no node needed). Exit 1 for a user error (wrong
/// passphrase, damaged file, target not empty), 2 for an internal one.
pub(crate) fn restore(out: &Out, dir: &Path, file: &Path, passphrase_file: Option<&Path>) -> u8 {
    use kith_backup::BackupError;
    // A file that is not a backup is told before a passphrase is asked for.
    if let Err(e) = kith_backup::read_header(file) {
        out.error(&format!("{}: {e}", file.display()));
        return 1;
    }
    let pass = match passphrase(passphrase_file, false) {
        Ok(p) => p,
        Err(e) => {
            out.error(&e);
            return 1;
        }
    };
    let res = kith_backup::key_for(file, pass.0.as_bytes())
        .and_then(|key| kith_backup::restore(file, &key, dir));
    match res {
        Ok(counts) => {
            if out.json() {
                out.json_value(&serde_json::json!({
                    "restored": dir,
                    "rows": counts.rows,
                    "files": counts.files,
                }));
            } else {
                out.text(&format!(
                    "restored {} rows and {} files into {}; start the node with `kith up`",
                    counts.rows,
                    counts.files,
                    dir.display()
                ));
            }
            0
        }
        Err(e) => {
            out.error(&e.to_string());
            match e {
                BackupError::Io(_) | BackupError::Store(_) => 2,
                _ => 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1d"), Some(86_400));
        assert_eq!(parse_interval("12h"), Some(43_200));
        assert_eq!(parse_interval("90"), Some(90));
        assert_eq!(parse_interval("5m"), Some(300));
        assert_eq!(parse_interval("x"), None);
        assert_eq!(parse_interval("3w"), None);
    }
}
