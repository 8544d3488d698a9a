//! One stream codec for both request-response protocols, `/kith/msg/1` ([`KithCodec`]) and
//! `/kith/signal/1` ([`SignalCodec`]): a request stream carries one frame each way,
//! `[u32 BE length][frame]`, the length checked against the protocol's limit
//! ([`Frame::MAX`] of its request type) before the body is read. The buffer grows with the
//! bytes that actually arrive, never reserved from the length prefix: a peer that announces
//! a 1 MiB frame and sends ten bytes makes the node hold ten bytes ([`READ_CHUNK`], or as
//! much as it sent, at most ahead of what it sent).
//!
//! A request that does not decode is not an error of the stream: the codec hands the
//! typed reason to the actor ([`Inbound`]), which logs it, penalises the peer and answers
//! (a failure inside libp2p would not be reported). A response that does not decode fails
//! the request with a [`BadFrame`] the actor finds again in the failure event.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use kith_proto::media::{MAX_MEDIA_FRAME, MediaRequest, MediaResponse};
use kith_proto::signal::{MAX_SIGNAL_FRAME, Signal, SignalAnswer};
use kith_proto::wire::{MAX_FRAME, Request, Response};
use kith_proto::{DecodeError, EncodeError};
use libp2p::StreamProtocol;

/// A message that travels as one frame of a request-response protocol.
pub trait Frame: Sized + Send + Sync + 'static {
    /// Largest frame of the protocol this message belongs to (both directions).
    const MAX: usize;
    /// The frame's bytes.
    fn to_frame(&self) -> Result<Vec<u8>, EncodeError>;
    /// The message in a frame, checked.
    fn from_frame(bytes: &[u8]) -> Result<Self, DecodeError>;
}

macro_rules! frame {
    ($t:ty, $max:expr) => {
        impl Frame for $t {
            const MAX: usize = $max;
            fn to_frame(&self) -> Result<Vec<u8>, EncodeError> {
                self.encode()
            }
            fn from_frame(bytes: &[u8]) -> Result<Self, DecodeError> {
                Self::decode(bytes)
            }
        }
    };
}

frame!(Request, MAX_FRAME);
frame!(Response, MAX_FRAME);
frame!(Signal, MAX_SIGNAL_FRAME);
frame!(SignalAnswer, MAX_SIGNAL_FRAME);
frame!(MediaRequest, MAX_MEDIA_FRAME);
frame!(MediaResponse, MAX_MEDIA_FRAME);

/// What a node reads from a request stream: the request, or the typed reason its frame was
/// refused.
pub type Inbound<Req = Request> = Result<Req, DecodeError>;
/// What a node reads from a signal stream.
pub type InboundSignal = Inbound<Signal>;

/// The request-response codec of a protocol whose requests are `Req` and answers `Resp`.
pub struct FramedCodec<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

/// The codec of `/kith/msg/1`.
pub type KithCodec = FramedCodec<Request, Response>;
/// The codec of `/kith/signal/1`.
pub type SignalCodec = FramedCodec<Signal, SignalAnswer>;
/// The codec of `/kith/media/1`.
pub type MediaCodec = FramedCodec<MediaRequest, MediaResponse>;

impl<Req, Resp> Default for FramedCodec<Req, Resp> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Req, Resp> Clone for FramedCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<Req, Resp> std::fmt::Debug for FramedCodec<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FramedCodec")
    }
}

/// Wraps a typed decode error so the actor can find it again in a failure event.
#[derive(Debug, thiserror::Error)]
#[error("bad frame: {0}")]
pub struct BadFrame(pub DecodeError);

/// How much the read buffer of a frame grows ahead of the bytes read at first (the first
/// step is the size of the frame, if smaller; later steps double what was read).
pub const READ_CHUNK: usize = 16 * 1024;

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
    let mut buf = Vec::new();
    read_body(io, len, &mut buf).await?;
    if buf.len() < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Ok(buf))
}

/// Reads up to `len` bytes into `buf` (until the stream ends), straight into the buffer
/// (no copy through a stack buffer): the buffer grows with what has arrived, by at most
/// [`READ_CHUNK`] or the bytes read so far, whichever is larger (so at most twice what was
/// read plus [`READ_CHUNK`]), never by what the length prefix announced.
async fn read_body<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    len: usize,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let mut got = buf.len();
    while got < len {
        if got == buf.len() {
            let grow = (len - got).min(READ_CHUNK.max(got));
            buf.try_reserve_exact(grow)
                .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
            buf.resize(got + grow, 0);
        }
        let n = io.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(())
}

/// Encodes `msg` and writes it as one frame, then closes the stream's write side.
async fn write_frame<T: AsyncWrite + Unpin + Send, F: Frame>(
    io: &mut T,
    msg: &F,
) -> io::Result<()> {
    let bytes = msg
        .to_frame()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if bytes.len() > F::MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl<Req: Frame, Resp: Frame> libp2p::request_response::Codec for FramedCodec<Req, Resp> {
    type Protocol = StreamProtocol;
    type Request = Inbound<Req>;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Inbound<Req>>
    where
        T: AsyncRead + Unpin + Send,
    {
        // An oversized length prefix is refused without reading (or allocating) the body.
        Ok(read_frame(io, Req::MAX)
            .await?
            .and_then(|buf| Req::from_frame(&buf)))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, Resp::MAX)
            .await?
            .and_then(|buf| Resp::from_frame(&buf))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, BadFrame(e)))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Inbound<Req>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let req = req.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, BadFrame(e)))?;
        write_frame(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        resp: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &resp).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer announces the largest frame and sends 100 bytes, then stops: the node holds
    /// about what it read, not the 1 MiB the prefix announced.
    #[tokio::test]
    async fn the_buffer_grows_with_what_was_read() {
        let mut wire = (MAX_FRAME as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&[7u8; 100]);
        let mut io = futures::io::Cursor::new(wire);
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await.unwrap();
        let mut buf = Vec::new();
        read_body(&mut io, u32::from_be_bytes(len) as usize, &mut buf)
            .await
            .unwrap();
        assert_eq!(buf.len(), 100);
        assert!(
            buf.capacity() <= READ_CHUNK,
            "reserved {} bytes for 100 read",
            buf.capacity()
        );
    }

    /// A peer that sends part of a large frame makes the buffer grow with what it sent (at
    /// most twice that, plus one step), not with the length it announced.
    #[tokio::test]
    async fn the_buffer_grows_at_most_twice_what_was_read() {
        for sent in [READ_CHUNK + 1, 3 * READ_CHUNK + 5, 100 * 1024] {
            let mut wire = (MAX_FRAME as u32).to_be_bytes().to_vec();
            wire.extend_from_slice(&vec![7u8; sent]);
            let mut io = futures::io::Cursor::new(wire);
            let mut len = [0u8; 4];
            io.read_exact(&mut len).await.unwrap();
            let mut buf = Vec::new();
            read_body(&mut io, u32::from_be_bytes(len) as usize, &mut buf)
                .await
                .unwrap();
            assert_eq!(buf.len(), sent);
            assert!(
                buf.capacity() <= 2 * sent + READ_CHUNK,
                "reserved {} bytes for {sent} read",
                buf.capacity()
            );
        }
    }

    /// The whole frame still arrives, and a stream that ends early is an error.
    #[tokio::test]
    async fn a_frame_is_read_whole_or_refused() {
        let body = vec![9u8; 3 * READ_CHUNK + 5];
        let mut wire = (body.len() as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&body);
        let mut io = futures::io::Cursor::new(wire.clone());
        assert_eq!(read_frame(&mut io, MAX_FRAME).await.unwrap().unwrap(), body);
        wire.truncate(wire.len() - 1);
        let mut io = futures::io::Cursor::new(wire);
        assert!(read_frame(&mut io, MAX_FRAME).await.is_err());
        let mut io = futures::io::Cursor::new(((MAX_FRAME + 1) as u32).to_be_bytes().to_vec());
        assert!(matches!(
            read_frame(&mut io, MAX_FRAME).await.unwrap(),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
