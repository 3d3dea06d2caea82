//! The libp2p request-response codec for `/portico/signal/1`: one length-prefixed CBOR
//! frame per request and per response, checked against the maximum before reading the body.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use portico_core::wire::codec::{check_prefix, encode_framed, PREFIX_LEN};
use portico_core::wire::signal::{SignalRequest, SignalResponse, MAX_SIGNAL_LEN};
use portico_core::wire::WireMessage;

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new(portico_core::wire::signal::PROTOCOL);

/// Codec for [`SignalRequest`] / [`SignalResponse`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SignalCodec;

async fn read_frame<M: WireMessage, T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<M> {
    let mut prefix = [0u8; PREFIX_LEN];
    io.read_exact(&mut prefix).await?;
    let len = check_prefix(prefix, MAX_SIGNAL_LEN)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    M::decode(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_frame<M: WireMessage, T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    msg: &M,
) -> io::Result<()> {
    let bytes = encode_framed(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl libp2p::request_response::Codec for SignalCodec {
    type Protocol = StreamProtocol;
    type Request = SignalRequest;
    type Response = SignalResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SignalRequest> {
        read_frame(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SignalResponse> {
        read_frame(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SignalRequest,
    ) -> io::Result<()> {
        write_frame(io, &req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SignalResponse,
    ) -> io::Result<()> {
        write_frame(io, &res).await
    }
}
