//! Wire messages of `/portico/signal/1` and `/portico/session/1`, and their codec.
//!
//! Every message is a CBOR array `[version, variant, body]`: `version` is the message set's
//! version (a `u8`), `variant` the explicit number of the enum variant (a `u16`, never
//! reused), `body` a CBOR map of named fields. Names are not on the wire for variants, so a
//! variant can be renamed in code without breaking peers; adding a variant is compatible
//! (an old peer answers it with a typed "unknown variant" error); changing a body's meaning
//! needs a new protocol version (`/portico/session/2`).
//!
//! Decoding reads at most one frame's bytes (see [`codec`]), refuses nesting deeper than
//! [`MAX_DEPTH`], trailing bytes, other versions and unknown variants, each as a typed
//! [`DecodeError`]. ciborium never pre-allocates more than the input holds (serde caps size
//! hints), so a peer's claimed lengths cannot make us allocate.

pub mod codec;
pub mod handshake;
pub mod session;
pub mod signal;

pub use codec::{FrameDecoder, FrameError};

pub use crate::cbor::{InvalidPeerId, WirePeerId, MAX_DEPTH};

/// Why bytes from a peer are not a message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not well-formed CBOR of the envelope's shape, or nest too deeply.
    #[error("malformed {protocol} message: {reason}")]
    Malformed {
        /// Which message set was being decoded.
        protocol: &'static str,
        /// What the CBOR decoder reported.
        reason: String,
    },
    /// The envelope's version is not one we speak.
    #[error(
        "{protocol} message version {got} is not supported (this build speaks version {supported})"
    )]
    UnsupportedVersion {
        /// Which message set was being decoded.
        protocol: &'static str,
        /// The version in the message.
        got: u8,
        /// The version this build speaks.
        supported: u8,
    },
    /// The variant number is not known to this build.
    #[error("{protocol} message variant {tag} is unknown to this build")]
    UnknownVariant {
        /// Which message set was being decoded.
        protocol: &'static str,
        /// The variant number.
        tag: u16,
    },
    /// The body does not match the variant's fields.
    #[error("{protocol} message {variant}: bad body: {reason}")]
    BadBody {
        /// Which message set was being decoded.
        protocol: &'static str,
        /// The variant's name.
        variant: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Bytes left over after the message.
    #[error("{protocol} message has {extra} trailing bytes")]
    TrailingBytes {
        /// Which message set was being decoded.
        protocol: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// The message is larger than the protocol allows.
    #[error("{protocol} message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Which message set was being decoded.
        protocol: &'static str,
        /// The message length.
        len: usize,
        /// The maximum.
        max: usize,
    },
}

/// Why a message could not be encoded (a bug on our side, never peer input).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {variant}: {reason}")]
pub struct EncodeError {
    /// The variant's name.
    pub variant: &'static str,
    /// What serde reported.
    pub reason: String,
}

/// A message set with a version, numbered variants and a maximum encoded size.
pub trait WireMessage: Sized {
    /// The message set's name, for errors and logs (`"signal"`, `"session"`).
    const PROTOCOL: &'static str;
    /// The envelope version this build speaks.
    const VERSION: u8;
    /// The largest encoded message accepted.
    const MAX_LEN: usize;
    /// Every variant number, in declaration order.
    const TAGS: &'static [u16];

    /// The variant's number on the wire.
    fn tag(&self) -> u16;
    /// The variant's name (for logs and errors).
    fn variant_name(&self) -> &'static str;
    /// Encodes the message as its CBOR envelope `[version, tag, body]` (no length prefix).
    fn encode(&self) -> Result<Vec<u8>, EncodeError>;
    /// Decodes the body of the envelope `bytes` (already checked: size, shape, version) as
    /// variant `tag`'s type, straight from the bytes.
    fn decode_body(tag: u16, bytes: &[u8]) -> Result<Self, DecodeError>;

    /// Decodes one message from exactly `bytes`.
    ///
    /// Two passes over at most [`Self::MAX_LEN`] bytes, neither building a generic CBOR value
    /// tree (which costs 32–64× the input for a message of many small items): the first
    /// checks the envelope and skips the body, the second deserializes the body as the
    /// variant's own type, whose fields are all bounded by the input.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > Self::MAX_LEN {
            return Err(DecodeError::TooLarge {
                protocol: Self::PROTOCOL,
                len: bytes.len(),
                max: Self::MAX_LEN,
            });
        }
        let mut rest = bytes;
        let (version, tag, serde::de::IgnoredAny): (u8, u16, serde::de::IgnoredAny) =
            ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH).map_err(|e| {
                DecodeError::Malformed {
                    protocol: Self::PROTOCOL,
                    reason: e.to_string(),
                }
            })?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes {
                protocol: Self::PROTOCOL,
                extra: rest.len(),
            });
        }
        if version != Self::VERSION {
            return Err(DecodeError::UnsupportedVersion {
                protocol: Self::PROTOCOL,
                got: version,
                supported: Self::VERSION,
            });
        }
        Self::decode_body(tag, bytes)
    }
}

/// Declares a message enum whose variants carry explicit wire numbers.
///
/// ```ignore
/// wire_enum! {
///     /// Docs.
///     pub enum Foo: "foo", version 1, max 1024 {
///         /// Docs.
///         1 => Bar(BarBody),
///     }
/// }
/// ```
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $proto:literal, version $version:literal, max $max:ident {
            $( $(#[$vmeta:meta])* $tag:literal => $variant:ident($body:ty), )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($body), )*
        }

        impl $crate::wire::WireMessage for $name {
            const PROTOCOL: &'static str = $proto;
            const VERSION: u8 = $version;
            const MAX_LEN: usize = $max;
            const TAGS: &'static [u16] = &[$($tag),*];

            fn tag(&self) -> u16 {
                match self { $( Self::$variant(_) => $tag, )* }
            }

            fn variant_name(&self) -> &'static str {
                match self { $( Self::$variant(_) => stringify!($variant), )* }
            }

            fn encode(&self) -> Result<Vec<u8>, $crate::wire::EncodeError> {
                let mut out = Vec::new();
                let written = match self {
                    $( Self::$variant(b) => ciborium::ser::into_writer(&($version, $tag, b), &mut out), )*
                };
                written.map_err(|e| $crate::wire::EncodeError {
                    variant: self.variant_name(),
                    reason: e.to_string(),
                })?;
                Ok(out)
            }

            fn decode_body(tag: u16, bytes: &[u8]) -> Result<Self, $crate::wire::DecodeError> {
                match tag {
                    $( $tag => ciborium::de::from_reader_with_recursion_limit::<(u8, u16, $body), _>(
                        bytes,
                        $crate::cbor::MAX_DEPTH,
                    )
                    .map(|(_, _, b)| Self::$variant(b))
                    .map_err(|e| {
                        $crate::wire::DecodeError::BadBody {
                            protocol: $proto,
                            variant: stringify!($variant),
                            reason: e.to_string(),
                        }
                    }), )*
                    tag => Err($crate::wire::DecodeError::UnknownVariant { protocol: $proto, tag }),
                }
            }
        }
    };
}
pub(crate) use wire_enum;

#[cfg(test)]
mod tests;
