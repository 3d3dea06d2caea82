//! The machine's long-term ed25519 identity: load or create it in a data directory.
//!
//! The key file holds the libp2p protobuf encoding of an ed25519 keypair. It is created with
//! mode 0600 and refused when group or others can read it (like OpenSSH refuses a private key
//! with loose permissions), because whoever reads it can impersonate this host.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p_identity::{Keypair, PeerId, PublicKey};
use sha2::{Digest, Sha256};

/// Errors from loading or creating an identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The data directory could not be created.
    #[error(
        "cannot create data directory {path}: {source}; pass --data DIR with a writable directory"
    )]
    CreateDir {
        /// The directory we tried to create.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Reading or writing the key file failed.
    #[error("cannot access key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The key file is readable or writable by group or others.
    #[error(
        "key file {path} has mode {mode:o}, readable by other users; run `chmod 600 {path}` \
         (and check nobody copied it) before starting again"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold a valid ed25519 keypair.
    #[error("key file {path} is not a valid ed25519 key ({reason}); move it away to create a new identity")]
    Corrupt {
        /// The key file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

/// A machine identity: an ed25519 keypair, its libp2p PeerId and a short fingerprint.
#[derive(Clone)]
pub struct Identity {
    /// The keypair; signs Noise static keys, registrations and (on the server) tickets.
    keypair: Keypair,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh random identity (not stored anywhere).
    pub fn generate() -> Self {
        Self {
            keypair: Keypair::generate_ed25519(),
        }
    }

    /// Wraps an existing keypair. Only ed25519 keys are used by Portico.
    pub fn from_keypair(keypair: Keypair) -> Self {
        Self { keypair }
    }

    /// Loads the identity from `dir/identity.key`, creating the directory and a new key
    /// (mode 0600) when there is none. Returns the identity and whether it was just created.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), IdentityError> {
        let path = dir.join(crate::data_dir::IDENTITY_KEY);
        match fs::read(&path) {
            Ok(bytes) => {
                check_private(&path)?;
                let keypair = Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
                    IdentityError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                if keypair.clone().try_into_ed25519().is_err() {
                    return Err(IdentityError::Corrupt {
                        path,
                        reason: "not an ed25519 key".into(),
                    });
                }
                Ok((Self { keypair }, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_private_dir(dir)?;
                let keypair = Keypair::generate_ed25519();
                let bytes = keypair
                    .to_protobuf_encoding()
                    .map_err(|e| IdentityError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                write_private(&path, &bytes)?;
                Ok((Self { keypair }, true))
            }
            Err(source) => Err(IdentityError::Io { path, source }),
        }
    }

    /// The keypair (for libp2p swarms and signing).
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.keypair.public()
    }

    /// The libp2p PeerId derived from the public key.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The short human fingerprint of this identity's public key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public())
    }

    /// Signs `msg` with the identity key.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        // ed25519 signing cannot fail; other key types are never constructed by Portico.
        self.keypair.sign(msg).unwrap_or_default()
    }
}

/// A short human fingerprint of a public key: the first 80 bits of SHA-256 over the key's
/// protobuf encoding, as five groups of four hex digits (`3f2a-91c0-7be3-0d55-a1b2`).
/// Two people can read it aloud to each other to compare keys.
pub fn fingerprint(key: &PublicKey) -> String {
    let digest = Sha256::digest(key.encode_protobuf());
    let hex = hex::encode(&digest[..10]);
    let groups: Vec<&str> = (0..5).map(|i| &hex[i * 4..i * 4 + 4]).collect();
    groups.join("-")
}

/// The public key an ed25519 PeerId embeds (its identity multihash); `None` for PeerIds that
/// only hash their key. Pinning a PeerId therefore pins the key.
pub fn key_of(peer: &PeerId) -> Option<PublicKey> {
    PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()
}

/// The fingerprint of the key a PeerId embeds (see [`key_of`]).
pub fn peer_fingerprint(peer: &PeerId) -> Option<String> {
    key_of(peer).map(|k| fingerprint(&k))
}

/// Creates `dir` (and parents) if needed; on Unix a newly created leaf is mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|source| IdentityError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `bytes` to a new file at `path` with mode 0600, durably (fsync), replacing nothing:
/// a concurrent creator makes this fail instead of silently overwriting its key.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Replaces `path` with `bytes` atomically (temp file, fsync, rename), mode 0600.
pub fn replace_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let tmp = path.with_extension("tmp");
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(IdentityError::Io { path: tmp, source }),
    }
    write_private(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(|source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a file that group or others may read or write.
pub fn check_private(path: &Path) -> Result<(), IdentityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|source| IdentityError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let (a, created) = Identity::load_or_create(&data).unwrap();
        assert!(created);
        let (b, created) = Identity::load_or_create(&data).unwrap();
        assert!(!created);
        assert_eq!(a.peer_id(), b.peer_id());
        assert_eq!(a.fingerprint(), b.fingerprint());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_0600_and_loose_mode_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(crate::data_dir::IDENTITY_KEY);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(err, IdentityError::InsecurePermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn corrupt_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        write_private(
            &dir.path().join(crate::data_dir::IDENTITY_KEY),
            b"not a key",
        )
        .unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn a_peer_id_embeds_its_key() {
        let id = Identity::generate();
        assert_eq!(key_of(&id.peer_id()), Some(id.public()));
        assert_eq!(peer_fingerprint(&id.peer_id()), Some(id.fingerprint()));
    }

    #[test]
    fn fingerprint_shape() {
        let fp = Identity::generate().fingerprint();
        assert_eq!(fp.len(), 24);
        assert_eq!(fp.matches('-').count(), 4);
    }
}
