//! `kith passphrase set|change|remove`, and the passphrase `kith up` needs when the key
//! file is protected (from `--passphrase-file`, the file named by `KITH_PASSPHRASE_FILE`,
//! or the terminal). The passphrase wraps the storage key (argon2id); the store is not
//! rewritten, so these commands are quick and work while the node runs.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use zeroize::Zeroizing;

use crate::output::Out;

/// Names a file holding the passphrase (first line), for services.
pub(crate) const PASSPHRASE_FILE_ENV: &str = "KITH_PASSPHRASE_FILE";
/// Set by `kith up --detach` for its child: the passphrase comes on standard input.
pub(crate) const PASSPHRASE_STDIN_ENV: &str = "KITH_PASSPHRASE_STDIN";

#[derive(Debug, Subcommand)]
pub(crate) enum PassphraseCmd {
    /// Protect the key file with a passphrase (asked twice on the terminal).
    Set {
        /// Read the new passphrase from the first line of this file instead.
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Change the passphrase.
    Change {
        /// Read the current passphrase from this file (or KITH_PASSPHRASE_FILE).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Read the new passphrase from this file.
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Remove the passphrase (the storage key lies in the key file again, mode 0600).
    Remove {
        /// Read the current passphrase from this file (or KITH_PASSPHRASE_FILE).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
}

type Secret = Zeroizing<String>;

fn from_file(f: &Path) -> Result<Secret, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?,
    );
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or("").to_string(),
    ))
}

fn prompt(what: &str, confirm: bool) -> Result<Secret, String> {
    let first = Zeroizing::new(rpassword::prompt_password(what).map_err(|e| {
        format!("cannot ask for the passphrase (no terminal? use --passphrase-file or {PASSPHRASE_FILE_ENV}): {e}")
    })?);
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Again: ")
                .map_err(|e| format!("cannot ask for the passphrase: {e}"))?,
        );
        if *again != *first {
            return Err("the passphrases differ".into());
        }
    }
    Ok(first)
}

fn non_empty(p: Secret) -> Result<Secret, String> {
    if p.is_empty() {
        return Err("the passphrase is empty".into());
    }
    Ok(p)
}

/// The current passphrase: from `file`, the file `KITH_PASSPHRASE_FILE` names, standard
/// input (for `kith up --detach`'s child), or the terminal.
fn current(file: Option<&Path>) -> Result<Secret, String> {
    if let Some(f) = file {
        return non_empty(from_file(f)?);
    }
    if let Some(f) = std::env::var_os(PASSPHRASE_FILE_ENV) {
        return non_empty(from_file(Path::new(&f))?);
    }
    if std::env::var_os(PASSPHRASE_STDIN_ENV).is_some() {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the passphrase: {e}"))?;
        return non_empty(Zeroizing::new(
            line.trim_end_matches(['\r', '\n']).to_string(),
        ));
    }
    non_empty(prompt("Passphrase of the key file: ", false)?)
}

fn new_one(file: Option<&Path>) -> Result<Secret, String> {
    match file {
        Some(f) => non_empty(from_file(f)?),
        None => non_empty(prompt("New passphrase: ", true)?),
    }
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join("keys")
}

/// The passphrase `kith up` needs: none when the key file is not protected.
pub(crate) fn for_up(dir: &Path, file: Option<&Path>) -> Result<Option<Secret>, String> {
    match kith_engine::key_file_is_protected(&key_path(dir)) {
        Ok(false) => Ok(None),
        Ok(true) => current(file).map(Some),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks `passphrase` opens the key file (before `kith up --detach` goes to the
/// background, so a wrong one is reported on the terminal).
pub(crate) fn check(dir: &Path, passphrase: &str) -> Result<(), String> {
    kith_engine::KeyFile::load_or_create(&key_path(dir), Some(passphrase.as_bytes()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `kith passphrase …`: returns the exit code.
pub(crate) fn run(out: &Out, dir: &Path, cmd: PassphraseCmd) -> u8 {
    let path = key_path(dir);
    let res = (|| -> Result<&'static str, String> {
        let protected = kith_engine::key_file_is_protected(&path).map_err(|e| e.to_string())?;
        let (old, new, done) = match cmd {
            PassphraseCmd::Set {
                new_passphrase_file,
            } => {
                if protected {
                    return Err(
                        "the key file already has a passphrase; use `kith passphrase change`"
                            .into(),
                    );
                }
                (
                    None,
                    Some(new_one(new_passphrase_file.as_deref())?),
                    "passphrase set",
                )
            }
            PassphraseCmd::Change {
                passphrase_file,
                new_passphrase_file,
            } => {
                if !protected {
                    return Err("the key file has no passphrase; use `kith passphrase set`".into());
                }
                let old = current(passphrase_file.as_deref())?;
                (
                    Some(old),
                    Some(new_one(new_passphrase_file.as_deref())?),
                    "passphrase changed",
                )
            }
            PassphraseCmd::Remove { passphrase_file } => {
                if !protected {
                    return Err("the key file has no passphrase".into());
                }
                (
                    Some(current(passphrase_file.as_deref())?),
                    None,
                    "passphrase removed",
                )
            }
        };
        kith_engine::KeyFile::change_passphrase(
            &path,
            old.as_ref().map(|p| p.as_bytes()),
            new.as_ref().map(|p| p.as_bytes()),
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok(done)
    })();
    match res {
        Ok(done) => {
            out.text(done);
            0
        }
        Err(e) => {
            out.error(&e);
            1
        }
    }
}
