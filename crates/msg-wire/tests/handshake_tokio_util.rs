//! The handshake through tokio-util (feature `codec`): `FramedWrite` and
//! `FramedRead` over an in-memory duplex, with the message arriving in two
//! pieces split at every byte, and the switch to frames afterwards.

#![cfg(feature = "codec")]

use std::fmt::Debug;

use bytes::Bytes;
use futures::{SinkExt, StreamExt, poll};
use msg_wire::{
    Answer, ClientHandshakeCodec, Frame, FrameCodec, Hello, Reason, ServerHandshakeCodec,
    SocketType, WireError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead, FramedWrite};

/// Room in each direction of the in-memory pipes: more than any handshake.
const PIPE: usize = 64 * 1024;

/// Send `item` through a `FramedWrite` and collect the bytes that come out
/// of the other end of the pipe.
async fn written_by<E, I>(codec: E, item: I) -> Vec<u8>
where
    E: Encoder<I, Error = WireError>,
{
    let (w, mut r) = duplex(PIPE);
    let mut sink = FramedWrite::new(w, codec);
    sink.send(item).await.unwrap();
    drop(sink); // end of stream for the reader
    let mut wire = Vec::new();
    r.read_to_end(&mut wire).await.unwrap();
    wire
}

/// Deliver `wire` to a `FramedRead` in two writes, the first `cut` bytes
/// then the rest, and return the one item it decodes.
async fn read_in_two<D>(codec: D, wire: &[u8], cut: usize) -> D::Item
where
    D: Decoder<Error = WireError>,
    D::Item: Debug,
{
    let (mut w, r) = duplex(PIPE);
    let mut stream = FramedRead::new(r, codec);
    w.write_all(&wire[..cut]).await.unwrap();
    if cut < wire.len() {
        // The reader has taken in every byte written so far and still waits.
        assert!(
            poll!(stream.next()).is_pending(),
            "an item after {cut} of {} bytes",
            wire.len()
        );
    }
    w.write_all(&wire[cut..]).await.unwrap();
    let item = stream.next().await.expect("an item").expect("decodes");
    drop(w);
    assert!(stream.next().await.is_none(), "nothing after the message");
    item
}

#[tokio::test]
async fn hello_round_trips_through_framed_split_at_every_byte() {
    let hellos = [
        Hello::new(
            SocketType::Req,
            Bytes::from_static(b"client-7"),
            Some(Bytes::from_static(b"secret-token")),
        ),
        Hello::new(SocketType::Sub, Bytes::new(), None),
    ];
    for hello in hellos {
        let wire = written_by(ClientHandshakeCodec::default(), &hello).await;
        for cut in 0..=wire.len() {
            let got = read_in_two(ServerHandshakeCodec::default(), &wire, cut).await;
            assert_eq!(got, hello, "cut at {cut}");
        }
    }
}

#[tokio::test]
async fn answers_round_trip_through_framed_split_at_every_byte() {
    let answers = [
        Answer::accept(SocketType::Rep, Bytes::from_static(b"server-1")),
        Answer::accept(SocketType::Pub, Bytes::new()),
        Answer::reject(Reason::AuthRejected, "unknown token"),
        // A Reject from a newer server is still read.
        Answer::Reject {
            version: 9,
            code: Reason::UnsupportedVersion,
            text: "this server speaks version 9".into(),
        },
    ];
    for answer in answers {
        let wire = written_by(ServerHandshakeCodec::default(), answer.clone()).await;
        for cut in 0..=wire.len() {
            let got = read_in_two(ClientHandshakeCodec::default(), &wire, cut).await;
            assert_eq!(got, answer, "cut at {cut}");
        }
    }
}

#[tokio::test]
async fn frames_sent_right_behind_the_answer_survive_the_switch_to_frames() {
    let (client_io, server_io) = duplex(PIPE);
    let mut client = Framed::new(client_io, ClientHandshakeCodec::default());
    let mut server = Framed::new(server_io, ServerHandshakeCodec::default());

    let hello = Hello::new(SocketType::Sub, Bytes::from_static(b"sub-1"), None);
    client.send(&hello).await.unwrap();
    assert_eq!(server.next().await.unwrap().unwrap(), hello);

    // The server answers and publishes at once, before the client reads:
    // both arrive in the client's read buffer together.
    server
        .send(Answer::accept(SocketType::Pub, Bytes::new()))
        .await
        .unwrap();
    let mut server = server.map_codec(|_| FrameCodec::new());
    let frame = Frame::Publish {
        topic: Bytes::from_static(b"t"),
        seq: 1,
        payload: Bytes::from_static(b"first"),
    };
    server.send(&frame).await.unwrap();

    assert!(client.next().await.unwrap().unwrap().is_accept());
    // `map_codec` keeps the read buffer, and with it the frame.
    let mut client = client.map_codec(|_| FrameCodec::new());
    assert_eq!(client.next().await.unwrap().unwrap(), frame);
}

#[tokio::test]
async fn eof_inside_a_handshake_message_is_an_error() {
    let hello = Hello::new(SocketType::Req, Bytes::from_static(b"me"), None);
    let wire = written_by(ClientHandshakeCodec::default(), &hello).await;
    let (mut w, r) = duplex(PIPE);
    let mut stream = FramedRead::new(r, ServerHandshakeCodec::default());
    w.write_all(&wire[..wire.len() - 1]).await.unwrap();
    drop(w);
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(err.is_io(), "{err:?}");
}
