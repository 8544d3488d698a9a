//! The stream codecs of `/kith/msg/1` and `/kith/signal/1`: `[u32 BE length][frame]`, the
//! length checked against the protocol's limit before the body is read.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use kith_proto::DecodeError;
use kith_proto::signal::{MAX_SIGNAL_FRAME, Signal, SignalAnswer};
use kith_proto::wire::{MAX_FRAME, Request, Response};
use libp2p::StreamProtocol;

/// What a node reads from a request stream: a valid request, or the typed reason the frame
/// was refused. Bad frames are handed to the actor (rather than failing the stream inside
/// libp2p, where the failure would not be reported) so it can log them and penalise the peer.
pub type Inbound = Result<Request, DecodeError>;

/// The request-response codec for Kith frames.
#[derive(Debug, Clone, Default)]
pub struct KithCodec;

/// Wraps a typed decode error so the actor can find it again in a failure event.
#[derive(Debug, thiserror::Error)]
#[error("bad frame: {0}")]
pub struct BadFrame(pub DecodeError);

/// Reads one frame: the outer error is the stream's, the inner one a refused length.
async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Result<Vec<u8>, DecodeError>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Ok(Err(DecodeError::TooLarge { len, limit: max }));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(Ok(buf))
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
    max: usize,
) -> io::Result<()> {
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn bad(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, BadFrame(e))
}

impl libp2p::request_response::Codec for KithCodec {
    type Protocol = StreamProtocol;
    type Request = Inbound;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Inbound>
    where
        T: AsyncRead + Unpin + Send,
    {
        // An oversized length prefix is refused without reading (or allocating) the body.
        Ok(read_frame(io, MAX_FRAME)
            .await?
            .and_then(|buf| Request::decode(&buf)))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_FRAME)
            .await?
            .and_then(|buf| Response::decode(&buf))
            .map_err(bad)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Inbound,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let req = req.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, BadFrame(e)))?;
        let bytes = req
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        write_frame(io, &bytes, MAX_FRAME).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        resp: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = resp
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        write_frame(io, &bytes, MAX_FRAME).await
    }
}

/// What a node reads from a signal stream: a signal, or why the frame was refused.
pub type InboundSignal = Result<Signal, DecodeError>;

/// The request-response codec for `/kith/signal/1`.
#[derive(Debug, Clone, Default)]
pub struct SignalCodec;

impl libp2p::request_response::Codec for SignalCodec {
    type Protocol = StreamProtocol;
    type Request = InboundSignal;
    type Response = SignalAnswer;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<InboundSignal>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(read_frame(io, MAX_SIGNAL_FRAME)
            .await?
            .and_then(|buf| Signal::decode(&buf)))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SignalAnswer>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_SIGNAL_FRAME)
            .await?
            .and_then(|buf| SignalAnswer::decode(&buf))
            .map_err(bad)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: InboundSignal,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let req = req.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, BadFrame(e)))?;
        let bytes = req
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        write_frame(io, &bytes, MAX_SIGNAL_FRAME).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        resp: SignalAnswer,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = resp
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        write_frame(io, &bytes, MAX_SIGNAL_FRAME).await
    }
}
