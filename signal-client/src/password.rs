//! Reading a password for the command lines (`portico-signal user add`, `portico login`): the
//! first line of stdin with `--password-stdin`, else a prompt without echo on a terminal.

use std::io::{BufRead, IsTerminal};

/// Why no password could be read.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// stdin is not a terminal and `--password-stdin` was not given.
    #[error("no password given: pipe it with --password-stdin")]
    NotATerminal,
    /// The two entries differ.
    #[error("the passwords differ; try again")]
    Mismatch,
    /// Reading failed.
    #[error("reading the password: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a password; `confirm` asks twice at a prompt (for new passwords).
pub fn read(from_stdin: bool, confirm: bool) -> Result<String, PasswordError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err(PasswordError::NotATerminal);
    }
    let first = rpassword::prompt_password("Password: ")?;
    if confirm && rpassword::prompt_password("Again: ")? != first {
        return Err(PasswordError::Mismatch);
    }
    Ok(first)
}
