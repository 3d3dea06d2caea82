//! Provisioning bundles (the MSI Configurator's role): a file the server writes and signs —
//! server address(es) and key, node path, host ACL — that `portico host --provision FILE`
//! applies, so hosts deployed from one bundle share one access policy.
//!
//! The file is CBOR `SignedBundle{body, signature}`; `body` is the CBOR of [`Bundle`] and the
//! signature is the server's over `"portico-bundle-v1\0" || body`, checked against the key
//! inside the bundle. That proves only that the holder of that key made the file, so a host
//! applies a bundle only when its key's fingerprint is one the host was told to trust
//! (`--trust-server`, checked by the admin against `portico-signal id`): [`read_trusted`].

use libp2p_identity::PublicKey;
use serde::{Deserialize, Serialize};

use crate::cbor::MAX_DEPTH;
use crate::identity::Identity;
use crate::policy::AclEntry;

const DOMAIN: &[u8] = b"portico-bundle-v1\0";
/// Bundle format version.
pub const BUNDLE_VERSION: u8 = 1;
/// Largest bundle file accepted.
pub const MAX_BUNDLE_LEN: usize = 256 * 1024;

/// What a bundle configures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// Format version.
    pub version: u8,
    /// The server's display name.
    pub server_name: String,
    /// Addresses of the server (`host:port` or multiaddrs).
    pub server_addrs: Vec<String>,
    /// The server's public key (libp2p protobuf encoding), pinned by the host.
    #[serde(with = "serde_bytes")]
    pub server_key: Vec<u8>,
    /// Where hosts from this bundle go in the node tree.
    pub node_path: String,
    /// The host ACL.
    pub acl: Vec<AclEntry>,
    /// Unix seconds.
    pub issued_at: u64,
    /// The enrollment token hosts from this bundle register with (the server admits no
    /// host without one, or an admin's approval).
    #[serde(default)]
    pub enroll: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SignedBundle {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signature: Vec<u8>,
}

/// A bundle file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Too large.
    #[error("bundle file is {len} bytes, more than the maximum of {MAX_BUNDLE_LEN}")]
    TooLarge {
        /// Size seen.
        len: usize,
    },
    /// Not a bundle.
    #[error("not a Portico provisioning bundle: {0}")]
    Malformed(String),
    /// Another version.
    #[error("bundle version {0} is not supported by this build")]
    UnsupportedVersion(u8),
    /// The signature does not verify.
    #[error("bundle signature does not verify: the file was altered or not made by its server")]
    BadSignature,
    /// Signed by a server key the host was not told to trust.
    #[error("the bundle is signed by server key {fingerprint}, not the one given to trust; check the fingerprint with your server's admin (`portico-signal id` prints it) and pass it as --trust-server")]
    Untrusted {
        /// The bundle's server key fingerprint.
        fingerprint: String,
    },
}

fn cbor<T: Serialize>(v: &T) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).map_err(|e| BundleError::Malformed(e.to_string()))?;
    Ok(out)
}

/// Signs `bundle` with the server identity; returns the file content.
pub fn write(bundle: &Bundle, server: &Identity) -> Result<Vec<u8>, BundleError> {
    let body = cbor(bundle)?;
    let signature = server.sign(&[DOMAIN, &body].concat());
    cbor(&SignedBundle { body, signature })
}

/// Reads and verifies a bundle file; returns the bundle and its server key.
pub fn read(bytes: &[u8]) -> Result<(Bundle, PublicKey), BundleError> {
    if bytes.len() > MAX_BUNDLE_LEN {
        return Err(BundleError::TooLarge { len: bytes.len() });
    }
    let signed: SignedBundle = ciborium::de::from_reader_with_recursion_limit(bytes, MAX_DEPTH)
        .map_err(|e| BundleError::Malformed(e.to_string()))?;
    let bundle: Bundle =
        ciborium::de::from_reader_with_recursion_limit(signed.body.as_slice(), MAX_DEPTH)
            .map_err(|e| BundleError::Malformed(e.to_string()))?;
    if bundle.version != BUNDLE_VERSION {
        return Err(BundleError::UnsupportedVersion(bundle.version));
    }
    let key = PublicKey::try_decode_protobuf(&bundle.server_key)
        .map_err(|e| BundleError::Malformed(e.to_string()))?;
    if !key.verify(&[DOMAIN, &signed.body].concat(), &signed.signature) {
        return Err(BundleError::BadSignature);
    }
    Ok((bundle, key))
}

/// Reads a bundle like [`read`] and accepts it only when its server key has the fingerprint
/// (or PeerId) `trusted` — so a bundle proves its origin, not only its integrity.
pub fn read_trusted(bytes: &[u8], trusted: &str) -> Result<(Bundle, PublicKey), BundleError> {
    let (bundle, key) = read(bytes)?;
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let fp = crate::identity::fingerprint(&key);
    let peer = key.to_peer_id().to_string();
    if norm(trusted).is_empty() || (norm(trusted) != norm(&fp) && trusted.trim() != peer) {
        return Err(BundleError::Untrusted { fingerprint: fp });
    }
    Ok((bundle, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Approval, Permissions};

    #[test]
    fn round_trip_and_tamper() {
        let server = Identity::generate();
        let b = Bundle {
            version: BUNDLE_VERSION,
            server_name: "hq".into(),
            server_addrs: vec!["signal.example:5655".into()],
            server_key: server.public().encode_protobuf(),
            node_path: "/Marketing".into(),
            acl: vec![AclEntry {
                principal: "group:Marketing".parse().unwrap(),
                permissions: "view,control,files".parse().unwrap(),
                approval: Approval::Never,
                expires_at: None,
            }],
            issued_at: 1,
            enroll: Some("enroll-00".into()),
        };
        let file = write(&b, &server).unwrap();
        let (got, key) = read(&file).unwrap();
        assert_eq!(got, b);
        assert_eq!(key, server.public());
        assert_eq!(
            got.acl[0].permissions,
            "view,control,files".parse::<Permissions>().unwrap()
        );
        // Any flipped byte is refused, never accepted.
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            if let Ok((got, _)) = read(&bad) {
                panic!("byte {i} flipped and still accepted: {got:?}");
            }
        }
        assert!(matches!(
            read(&vec![0; MAX_BUNDLE_LEN + 1]),
            Err(BundleError::TooLarge { .. })
        ));
        // Origin: accepted with the server's fingerprint (any spelling) or PeerId; a
        // bundle its maker signed with another key is refused, whatever it says inside.
        let fp = server.fingerprint();
        assert!(read_trusted(&file, &fp).is_ok());
        assert!(read_trusted(&file, &fp.to_uppercase().replace('-', ":")).is_ok());
        assert!(read_trusted(&file, &server.peer_id().to_string()).is_ok());
        assert!(read_trusted(&file, "").is_err());
        let forger = Identity::generate();
        let mut forged = b.clone();
        forged.server_key = forger.public().encode_protobuf();
        let forged = write(&forged, &forger).unwrap();
        assert!(read(&forged).is_ok(), "integrity alone holds");
        assert!(matches!(
            read_trusted(&forged, &fp),
            Err(BundleError::Untrusted { .. })
        ));
    }
}
