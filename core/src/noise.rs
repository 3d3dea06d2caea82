//! The per-session Noise handshake (Noise_XX_25519_ChaChaPoly_BLAKE2s) and transport.
//!
//! libp2p already encrypts each connection; this second layer keys the *session* end to end
//! between the viewer and the host it meant to reach, so a relay (or a relay→direct switch)
//! never sees or changes session bytes, and the access request is bound to the keys.
//!
//! ```text
//! viewer (initiator)                          host (responder)
//!   -> e                                        (message 1)
//!   <- e, ee, s, es  + HostHello{proof}         (message 2)
//!   -> s, se         + ViewerHello{proof, request}  (message 3)
//! ```
//!
//! A proof is the peer's libp2p identity key and its signature over the peer's Noise static
//! key. The viewer refuses a host whose identity is not the PeerId it dialled; the host learns
//! the viewer's PeerId the same way. Every handshake and transport message travels in a
//! length-prefixed frame of at most 65535 bytes; a session message larger than one Noise
//! message is split into chunks, each carrying a "final" flag. There is no unencrypted path:
//! [`Transport`] is the only way to produce or read session bytes.

use libp2p_identity::{PeerId, PublicKey};

use crate::identity::Identity;
use crate::wire::codec::{frame, FrameDecoder, FrameError};
use crate::wire::handshake::{
    AccessRequest, HandshakePayload, HostHello, IdentityProof, ViewerHello,
};
use crate::wire::session::SessionMessage;
use crate::wire::{DecodeError, EncodeError, WireMessage};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Prologue mixed into the handshake: both sides must agree they speak session/1.
const PROLOGUE: &[u8] = b"/portico/session/1";
/// Domain separation for the identity signature over the Noise static key.
const STATIC_DOMAIN: &[u8] = b"portico-noise-static-v1\0";
/// Largest Noise message.
pub const MAX_NOISE_MSG: usize = 65535;
/// AEAD tag length.
const TAG_LEN: usize = 16;
/// Plaintext bytes per chunk: one flag byte, the rest data.
const CHUNK_DATA: usize = MAX_NOISE_MSG - TAG_LEN - 1;
/// Chunk flag: more chunks follow.
const MORE: u8 = 0;
/// Chunk flag: last chunk of a message.
const FINAL: u8 = 1;

/// Why a handshake or transport message is refused. Every variant ends the session.
#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    /// The Noise state machine refused (bad MAC, wrong order, bad key…).
    #[error("noise handshake failed: {0}")]
    Snow(String),
    /// The handshake payload is not a message.
    #[error("bad handshake payload: {0}")]
    Payload(#[from] DecodeError),
    /// The handshake payload is the wrong message for this step.
    #[error("unexpected handshake payload {got} (expected {expected})")]
    UnexpectedPayload {
        /// What was expected.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// The identity key in the proof does not decode.
    #[error("peer sent an invalid identity key")]
    BadIdentityKey,
    /// The identity signature over the Noise static key does not verify.
    #[error("peer's identity signature over its session key does not verify")]
    BadIdentitySignature,
    /// The host is not the one the viewer meant to reach.
    #[error("host identity mismatch: expected {expected}, got {got}")]
    WrongPeer {
        /// The PeerId dialled.
        expected: Box<PeerId>,
        /// The PeerId that answered.
        got: Box<PeerId>,
    },
    /// A decrypted chunk is empty or has an unknown flag.
    #[error("malformed encrypted chunk")]
    BadChunk,
    /// A reassembled message is larger than allowed.
    #[error("session message exceeds {max} bytes")]
    MessageTooLarge {
        /// The maximum.
        max: usize,
    },
    /// Framing error on the encrypted stream.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Our own message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

fn snow_err(e: snow::Error) -> NoiseError {
    NoiseError::Snow(e.to_string())
}

fn builder<'a>() -> Result<snow::Builder<'a>, NoiseError> {
    let params = NOISE_PARAMS.parse().map_err(snow_err)?;
    snow::Builder::new(params)
        .prologue(PROLOGUE)
        .map_err(snow_err)
}

/// A fresh Noise static keypair for one session, and our identity's proof over it.
fn session_keys(identity: &Identity) -> Result<(snow::Keypair, IdentityProof), NoiseError> {
    let keys = builder()?.generate_keypair().map_err(snow_err)?;
    let proof = IdentityProof {
        identity_key: identity.public().encode_protobuf(),
        signature: identity.sign(&[STATIC_DOMAIN, &keys.public].concat()),
    };
    Ok((keys, proof))
}

/// Checks a proof against the remote Noise static key; returns the proven PeerId.
fn check_proof(proof: &IdentityProof, remote_static: Option<&[u8]>) -> Result<PeerId, NoiseError> {
    let key = PublicKey::try_decode_protobuf(&proof.identity_key)
        .map_err(|_| NoiseError::BadIdentityKey)?;
    let remote_static = remote_static.ok_or(NoiseError::BadIdentitySignature)?;
    if !key.verify(&[STATIC_DOMAIN, remote_static].concat(), &proof.signature) {
        return Err(NoiseError::BadIdentitySignature);
    }
    Ok(key.to_peer_id())
}

fn write(state: &mut snow::HandshakeState, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
    let mut buf = vec![0u8; MAX_NOISE_MSG];
    let n = state.write_message(payload, &mut buf).map_err(snow_err)?;
    buf.truncate(n);
    Ok(frame(&buf, MAX_NOISE_MSG)?)
}

fn read(state: &mut snow::HandshakeState, msg: &[u8]) -> Result<Vec<u8>, NoiseError> {
    let mut buf = vec![0u8; MAX_NOISE_MSG];
    let n = state.read_message(msg, &mut buf).map_err(snow_err)?;
    buf.truncate(n);
    Ok(buf)
}

/// The viewer's side, after sending message 1.
pub struct Initiator {
    /// Noise state.
    state: snow::HandshakeState,
    /// The host PeerId the viewer meant to reach.
    expected_host: PeerId,
    /// Our proof, sent in message 3.
    proof: IdentityProof,
    /// The access request, sent in message 3.
    request: AccessRequest,
}

/// What the viewer learned from the handshake.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// The host's proven PeerId (equal to the one dialled).
    pub peer_id: PeerId,
    /// The host's identity key.
    pub identity_key: PublicKey,
    /// The host's agent string.
    pub agent: String,
}

impl Initiator {
    /// Starts a handshake towards `expected_host`; returns the state and framed message 1.
    pub fn start(
        identity: &Identity,
        expected_host: PeerId,
        request: AccessRequest,
    ) -> Result<(Self, Vec<u8>), NoiseError> {
        let (keys, proof) = session_keys(identity)?;
        let mut state = builder()?
            .local_private_key(&keys.private)
            .map_err(snow_err)?
            .build_initiator()
            .map_err(snow_err)?;
        let msg1 = write(&mut state, &[])?;
        Ok((
            Self {
                state,
                expected_host,
                proof,
                request,
            },
            msg1,
        ))
    }

    /// Reads message 2 (body without its length prefix), checks the host, and returns the
    /// framed message 3 and the transport.
    pub fn finish(mut self, msg2: &[u8]) -> Result<(Vec<u8>, Transport, HostInfo), NoiseError> {
        let payload = read(&mut self.state, msg2)?;
        let hello = match HandshakePayload::decode(&payload)? {
            HandshakePayload::HostHello(h) => h,
            other => {
                return Err(NoiseError::UnexpectedPayload {
                    expected: "HostHello",
                    got: other.variant_name(),
                })
            }
        };
        let got = check_proof(&hello.proof, self.state.get_remote_static())?;
        if got != self.expected_host {
            return Err(NoiseError::WrongPeer {
                expected: Box::new(self.expected_host),
                got: Box::new(got),
            });
        }
        let identity_key = PublicKey::try_decode_protobuf(&hello.proof.identity_key)
            .map_err(|_| NoiseError::BadIdentityKey)?;
        let payload = HandshakePayload::ViewerHello(ViewerHello {
            proof: self.proof,
            request: self.request,
        })
        .encode()?;
        let msg3 = write(&mut self.state, &payload)?;
        let transport = Transport::new(self.state.into_transport_mode().map_err(snow_err)?);
        Ok((
            msg3,
            transport,
            HostInfo {
                peer_id: got,
                identity_key,
                agent: hello.agent,
            },
        ))
    }
}

/// The host's side.
pub struct Responder {
    /// Noise state.
    state: snow::HandshakeState,
}

/// What the host learned from the handshake: who the viewer is and what it asks.
#[derive(Debug, Clone)]
pub struct ViewerInfo {
    /// The viewer's proven PeerId.
    pub peer_id: PeerId,
    /// The access request.
    pub request: AccessRequest,
}

impl Responder {
    /// Reads message 1 (body without prefix); returns the state and framed message 2.
    pub fn respond(
        identity: &Identity,
        agent: &str,
        msg1: &[u8],
    ) -> Result<(Self, Vec<u8>), NoiseError> {
        let (keys, proof) = session_keys(identity)?;
        let mut state = builder()?
            .local_private_key(&keys.private)
            .map_err(snow_err)?
            .build_responder()
            .map_err(snow_err)?;
        let payload = read(&mut state, msg1)?;
        if !payload.is_empty() {
            return Err(NoiseError::UnexpectedPayload {
                expected: "empty",
                got: "payload",
            });
        }
        let hello = HostHello {
            proof,
            agent: agent.to_string(),
        };
        let payload = HandshakePayload::HostHello(hello).encode()?;
        let msg2 = write(&mut state, &payload)?;
        Ok((Self { state }, msg2))
    }

    /// Reads message 3 (body without prefix); returns the transport and the viewer's request.
    pub fn finish(mut self, msg3: &[u8]) -> Result<(Transport, ViewerInfo), NoiseError> {
        let payload = read(&mut self.state, msg3)?;
        let hello = match HandshakePayload::decode(&payload)? {
            HandshakePayload::ViewerHello(v) => v,
            other => {
                return Err(NoiseError::UnexpectedPayload {
                    expected: "ViewerHello",
                    got: other.variant_name(),
                })
            }
        };
        let peer_id = check_proof(&hello.proof, self.state.get_remote_static())?;
        let transport = Transport::new(self.state.into_transport_mode().map_err(snow_err)?);
        Ok((
            transport,
            ViewerInfo {
                peer_id,
                request: hello.request,
            },
        ))
    }
}

/// An established session: encrypts outgoing messages and decrypts incoming bytes.
pub struct Transport {
    /// Noise transport state.
    state: snow::TransportState,
    /// Splits the incoming byte stream into Noise messages.
    frames: FrameDecoder,
    /// Plaintext of a message whose chunks are still arriving.
    partial: Vec<u8>,
    /// Largest reassembled message.
    max_message: usize,
    /// Scratch buffer for one Noise message.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("partial", &self.partial.len())
            .finish_non_exhaustive()
    }
}

impl Transport {
    fn new(state: snow::TransportState) -> Self {
        Self {
            state,
            frames: FrameDecoder::new(MAX_NOISE_MSG),
            partial: Vec::new(),
            max_message: SessionMessage::MAX_LEN,
            scratch: vec![0u8; MAX_NOISE_MSG],
        }
    }

    /// Encrypts `plaintext` as one or more framed chunks, ready to write to the stream.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if plaintext.len() > self.max_message {
            return Err(NoiseError::MessageTooLarge {
                max: self.max_message,
            });
        }
        let mut out = Vec::with_capacity(
            plaintext.len() + (plaintext.len() / CHUNK_DATA + 1) * (4 + TAG_LEN + 1),
        );
        let mut chunk = Vec::with_capacity(CHUNK_DATA + 1);
        let mut offset = 0;
        loop {
            let end = (offset + CHUNK_DATA).min(plaintext.len());
            let last = end == plaintext.len();
            chunk.clear();
            chunk.push(if last { FINAL } else { MORE });
            chunk.extend_from_slice(&plaintext[offset..end]);
            let n = self
                .state
                .write_message(&chunk, &mut self.scratch)
                .map_err(snow_err)?;
            out.extend_from_slice(&frame(&self.scratch[..n], MAX_NOISE_MSG)?);
            if last {
                break;
            }
            offset = end;
        }
        Ok(out)
    }

    /// Encodes and encrypts a session message.
    pub fn send(&mut self, msg: &SessionMessage) -> Result<Vec<u8>, NoiseError> {
        let bytes = msg.encode()?;
        self.seal(&bytes)
    }

    /// Feeds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.frames.push(bytes);
    }

    /// The next whole decrypted plaintext, if one is complete.
    pub fn open_next(&mut self) -> Result<Option<Vec<u8>>, NoiseError> {
        while let Some(ciphertext) = self.frames.next_frame()? {
            let n = self
                .state
                .read_message(&ciphertext, &mut self.scratch)
                .map_err(snow_err)?;
            let (&flag, data) = self.scratch[..n]
                .split_first()
                .ok_or(NoiseError::BadChunk)?;
            if self.partial.len() + data.len() > self.max_message {
                return Err(NoiseError::MessageTooLarge {
                    max: self.max_message,
                });
            }
            self.partial.extend_from_slice(data);
            match flag {
                FINAL => return Ok(Some(std::mem::take(&mut self.partial))),
                MORE => {}
                _ => return Err(NoiseError::BadChunk),
            }
        }
        Ok(None)
    }

    /// The next whole session message, if one is complete.
    pub fn recv(&mut self) -> Result<Option<SessionMessage>, NoiseError> {
        match self.open_next()? {
            Some(bytes) => Ok(Some(SessionMessage::decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
