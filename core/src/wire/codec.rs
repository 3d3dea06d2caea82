//! Length-prefixed framing: a 4-byte big-endian length, then that many bytes.
//!
//! The length is checked against a hard maximum *before* any byte of the body is buffered,
//! so a peer claiming 4 GiB gets [`FrameError::TooLarge`] and nothing is allocated for it.
//! [`FrameDecoder`] is sans-IO: push the bytes you read, pull whole frames out.

use super::{EncodeError, WireMessage};

/// Size of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Why a byte stream is not a sequence of frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The prefix announces more than the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes received.
        have: usize,
        /// Bytes the frame needed.
        need: usize,
    },
    /// The decoder already failed; the stream must be closed.
    #[error("frame decoder already failed; close the stream")]
    Poisoned,
}

/// Prepends the length prefix to `body`. Refuses bodies above `max`.
pub fn frame(body: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    if body.len() > max {
        return Err(FrameError::TooLarge {
            len: body.len() as u64,
            max,
        });
    }
    let mut out = Vec::with_capacity(PREFIX_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Encodes `msg` and frames it.
pub fn encode_framed<M: WireMessage>(msg: &M) -> Result<Vec<u8>, EncodeError> {
    let body = msg.encode()?;
    frame(&body, M::MAX_LEN).map_err(|e| EncodeError {
        variant: msg.variant_name(),
        reason: e.to_string(),
    })
}

/// Reads a length prefix and checks it against `max`; returns the body length.
pub fn check_prefix(prefix: [u8; PREFIX_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    Ok(len)
}

/// Incremental frame decoder: push bytes as they arrive, take whole frames.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Largest frame body accepted.
    max: usize,
    /// Bytes received and not yet returned as frames.
    buf: Vec<u8>,
    /// Set once an error was returned; the stream is unusable after that.
    poisoned: bool,
}

impl FrameDecoder {
    /// A decoder that accepts frame bodies up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            poisoned: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame body, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.poisoned {
            return Err(FrameError::Poisoned);
        }
        if self.buf.len() < PREFIX_LEN {
            return Ok(None);
        }
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&self.buf[..PREFIX_LEN]);
        let len = match check_prefix(prefix, self.max) {
            Ok(len) => len,
            Err(e) => {
                self.poisoned = true;
                self.buf = Vec::new();
                return Err(e);
            }
        };
        if self.buf.len() < PREFIX_LEN + len {
            return Ok(None);
        }
        let body = self.buf[PREFIX_LEN..PREFIX_LEN + len].to_vec();
        self.buf.drain(..PREFIX_LEN + len);
        Ok(Some(body))
    }

    /// Call at end of stream: an error if a partial frame is left.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let need = if self.buf.len() < PREFIX_LEN {
            PREFIX_LEN
        } else {
            let mut prefix = [0u8; PREFIX_LEN];
            prefix.copy_from_slice(&self.buf[..PREFIX_LEN]);
            PREFIX_LEN + u32::from_be_bytes(prefix) as usize
        };
        Err(FrameError::Truncated {
            have: self.buf.len(),
            need,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_reassemble() {
        let a = frame(b"hello", 16).unwrap();
        let b = frame(b"", 16).unwrap();
        let c = frame(b"world!!", 16).unwrap();
        let all: Vec<u8> = [a, b, c].concat();
        for split in 0..all.len() {
            let mut d = FrameDecoder::new(16);
            let mut got = Vec::new();
            for part in [&all[..split], &all[split..]] {
                d.push(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, vec![b"hello".to_vec(), vec![], b"world!!".to_vec()]);
            d.finish().unwrap();
        }
    }

    #[test]
    fn huge_prefix_is_refused_before_buffering() {
        let mut d = FrameDecoder::new(1024);
        d.push(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                len: 0xffff_ffff,
                max: 1024
            })
        );
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_frame(), Err(FrameError::Poisoned));
    }

    #[test]
    fn truncated_stream_is_reported() {
        let mut d = FrameDecoder::new(1024);
        d.push(&[0, 0, 0, 10, 1, 2, 3]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated { have: 7, need: 14 }));
    }

    #[test]
    fn oversize_body_is_not_framed() {
        assert!(matches!(
            frame(&[0; 17], 16),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        ));
    }
}
