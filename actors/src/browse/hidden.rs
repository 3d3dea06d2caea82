//! What is never listed or served, whatever the shared folders are: names that hold
//! secrets by convention (dot-files and dot-directories such as `~/.ssh`, private keys),
//! and the host's own data directory and config file.

use std::path::{Component, Path, PathBuf};

/// Name endings that mark key and credential files.
const SECRET_SUFFIXES: [&str; 9] = [
    ".key",
    ".pem",
    ".p12",
    ".pfx",
    ".kdbx",
    ".jks",
    ".keystore",
    ".ppk",
    ".token",
];

/// Name beginnings of SSH private keys (and their `.pub` halves, harmless but telling).
const SECRET_PREFIXES: [&str; 4] = ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"];

/// Whether a file or folder called `name` is kept out of every listing and download.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || SECRET_SUFFIXES.iter().any(|s| lower.ends_with(s))
        || SECRET_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Whether any component of `rel` is a secret name.
pub fn has_secret_component(rel: &Path) -> bool {
    rel.components().any(|c| match c {
        Component::Normal(s) => is_secret_name(&s.to_string_lossy()),
        _ => false,
    })
}

/// The host's own files: real paths never served, and nothing beneath them.
#[derive(Debug, Clone, Default)]
pub struct Private(Vec<PathBuf>);

impl Private {
    /// These paths (the data dir, the config file…); ones that are not there are kept as
    /// given, so a folder created later is still covered.
    pub fn new(paths: &[PathBuf]) -> Self {
        Self(
            paths
                .iter()
                .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
                .collect(),
        )
    }

    /// Whether `real` is one of them or inside one.
    pub fn covers(&self, real: &Path) -> bool {
        self.0.iter().any(|p| real.starts_with(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_by_name() {
        for secret in [
            ".ssh",
            ".bashrc",
            "id_ed25519",
            "id_rsa.pub",
            "identity.key",
            "server.PEM",
            "console.token",
            "vault.kdbx",
        ] {
            assert!(is_secret_name(secret), "{secret}");
        }
        for plain in ["report.pdf", "keys.txt", "Public", "id", "monkey"] {
            assert!(!is_secret_name(plain), "{plain}");
        }
        assert!(has_secret_component(Path::new("a/.git/config")));
        assert!(!has_secret_component(Path::new("a/b/c.txt")));
        let private = Private::new(&[PathBuf::from("/home/u/.local/share/portico")]);
        assert!(private.covers(Path::new("/home/u/.local/share/portico/identity.key")));
        assert!(!private.covers(Path::new("/home/u/.local/share/porticox")));
    }
}
