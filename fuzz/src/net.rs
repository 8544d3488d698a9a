//! kith-net's stream codec: `[u32 BE length][frame]` read from a stream, for both
//! request-response protocols and both directions (feature `net`).

use futures::executor::block_on;
use futures::io::Cursor;
use kith_net::codec::{KithCodec, SignalCodec};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

/// The first byte picks the protocol and direction; the rest is what the stream carries.
pub fn net_frame(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => requests(KithCodec::default(), "/kith/msg/1", rest),
        1 => responses(KithCodec::default(), "/kith/msg/1", rest),
        2 => requests(SignalCodec::default(), "/kith/signal/1", rest),
        _ => responses(SignalCodec::default(), "/kith/signal/1", rest),
    }
}

/// Reads a request; one that decoded is written back and must read as the same request.
fn requests<C, R>(mut codec: C, name: &'static str, bytes: &[u8])
where
    C: Codec<Protocol = StreamProtocol, Request = Result<R, kith_proto::DecodeError>>,
    R: PartialEq + std::fmt::Debug + Clone,
{
    let proto = StreamProtocol::new(name);
    block_on(async {
        let Ok(Ok(req)) = codec.read_request(&proto, &mut Cursor::new(bytes)).await else {
            return;
        };
        let mut out = Cursor::new(Vec::new());
        codec
            .write_request(&proto, &mut out, Ok(req.clone()))
            .await
            .expect("a read request is written back");
        let again = codec
            .read_request(&proto, &mut Cursor::new(out.into_inner()))
            .await
            .expect("a written request is read back");
        assert_eq!(again, Ok(req));
    });
}

/// Reads a response; one that decoded is written back and must read as the same response.
fn responses<C, R>(mut codec: C, name: &'static str, bytes: &[u8])
where
    C: Codec<Protocol = StreamProtocol, Response = R>,
    R: PartialEq + std::fmt::Debug + Clone,
{
    let proto = StreamProtocol::new(name);
    block_on(async {
        let Ok(resp) = codec.read_response(&proto, &mut Cursor::new(bytes)).await else {
            return;
        };
        let mut out = Cursor::new(Vec::new());
        codec
            .write_response(&proto, &mut out, resp.clone())
            .await
            .expect("a read response is written back");
        let again = codec
            .read_response(&proto, &mut Cursor::new(out.into_inner()))
            .await
            .expect("a written response is read back");
        assert_eq!(again, resp);
    });
}
