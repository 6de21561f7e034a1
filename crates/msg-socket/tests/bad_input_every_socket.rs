//! Bad input, for every socket type, over real TCP and IPC.
//!
//! A raw client (a plain `TcpStream` or `UnixStream` that writes bytes made
//! with msg-wire's codecs) attacks a bound socket; Req and Sub sockets bind
//! too, so that they can be attacked. Every test below runs one attack
//! against one socket type and transport, through [`attack`], which checks
//! the whole promise each time:
//!
//! - the offender is closed (it reads EOF, after a Reject or Close frame
//!   naming the reason where one is due), within the handshake timeout
//!   where the attack is a stall, after the heartbeat timeout where it goes
//!   silent after its handshake;
//! - it is counted (`handshake_failures`, `protocol_errors` or
//!   `heartbeat_timeouts`, by one), an event (`HandshakeFailed` or
//!   `PeerMisbehaved`) names its address, and a warning logged on the
//!   test's thread carries that address;
//! - nothing panics;
//! - memory stays bounded: an oversized frame is refused from its header
//!   alone, the body never sent;
//! - a well-behaved peer of the same socket is served before, during (while
//!   a stalling or silent attacker is connected) and after the attack.
//!
//! Heartbeats run on real time here (the sockets are real), so the victim
//! of a silent attacker gets short heartbeat options and the test waits on
//! the stream's end and the victim's events, not on a clock.

use crate::raw;

use std::time::{Duration, Instant};

use crate::raw::{EchoRep, HANG, RawPeer, frames_in};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use msg_socket::transport::{Endpoint, PeerAddr};
use msg_socket::wire::{
    Answer, Compression, Frame, FrameCodec, HEADER_LEN, Hello, Reason, SocketType,
};
use msg_socket::{
    DealerSocket, PairSocket, PubSocket, PullSocket, PushSocket, RepSocket, ReqError, ReqSocket,
    RouterSocket, SocketEvent, SocketEvents, SocketOptions, SocketStats, SubSocket,
};

/// The victim's frame limit, small so that bombs are cheap to build.
const LIMIT: usize = 64 * 1024;
/// The victim's handshake timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(200);
/// The victim's heartbeats against an attacker that goes silent after its
/// handshake: short, for real time, yet with room for a loaded machine
/// (the well-behaved partner must answer a ping within the timeout).
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Req,
    Rep,
    Pub,
    Sub,
    Push,
    Pull,
    Dealer,
    Router,
    Pair,
}

impl Kind {
    /// The socket type a raw peer plays to be accepted.
    fn peer(self) -> SocketType {
        match self {
            Kind::Req => SocketType::Rep,
            Kind::Rep => SocketType::Req,
            Kind::Pub => SocketType::Sub,
            Kind::Sub => SocketType::Pub,
            Kind::Push => SocketType::Pull,
            Kind::Pull => SocketType::Push,
            Kind::Dealer => SocketType::Router,
            Kind::Router => SocketType::Dealer,
            Kind::Pair => SocketType::Pair,
        }
    }

    /// A socket type this kind refuses.
    fn incompatible(self) -> SocketType {
        match self {
            Kind::Req => SocketType::Sub,
            Kind::Rep => SocketType::Pub,
            Kind::Pub => SocketType::Req,
            Kind::Sub => SocketType::Rep,
            Kind::Push => SocketType::Pub,
            Kind::Pull => SocketType::Req,
            Kind::Dealer => SocketType::Pull,
            Kind::Router => SocketType::Push,
            Kind::Pair => SocketType::Dealer,
        }
    }

    fn own(self) -> SocketType {
        match self {
            Kind::Req => SocketType::Req,
            Kind::Rep => SocketType::Rep,
            Kind::Pub => SocketType::Pub,
            Kind::Sub => SocketType::Sub,
            Kind::Push => SocketType::Push,
            Kind::Pull => SocketType::Pull,
            Kind::Dealer => SocketType::Dealer,
            Kind::Router => SocketType::Router,
            Kind::Pair => SocketType::Pair,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Net {
    Tcp,
    Ipc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attack {
    /// Bytes of another protocol instead of a Hello.
    Garbage,
    /// A valid Hello for a socket type the victim cannot talk to.
    WrongSocketType,
    /// A valid handshake, then a frame header declaring a body over the
    /// limit (and no body).
    FrameTooLarge,
    /// A valid handshake, then a small compressed frame whose declared
    /// original size is over the limit.
    DeclaredBomb,
    /// A valid handshake, then a compressed frame that declares a small
    /// size but expands past it.
    LyingBomb,
    /// Half a Hello, then nothing.
    HalfHello,
    /// Connects and sends nothing.
    Silent,
    /// Completes a valid handshake, then sends nothing (not even a pong).
    SilentAfterHandshake,
}

impl Attack {
    /// Whether the attacker is stuck in the handshake (and the victim must
    /// keep serving others meanwhile, until the handshake timeout).
    fn stalls(self) -> bool {
        matches!(self, Attack::HalfHello | Attack::Silent)
    }

    /// Whether the handshake completes before the attack.
    fn after_handshake(self) -> bool {
        matches!(
            self,
            Attack::FrameTooLarge
                | Attack::DeclaredBomb
                | Attack::LyingBomb
                | Attack::SilentAfterHandshake
        )
    }

    /// The victim's options for this attack.
    fn victim_options(self) -> SocketOptions {
        let mut opts = victim_options();
        if self == Attack::SilentAfterHandshake {
            opts.heartbeat_interval(Some(HEARTBEAT_INTERVAL))
                .heartbeat_timeout(HEARTBEAT_TIMEOUT);
        }
        opts
    }
}

fn victim_options() -> SocketOptions {
    let mut opts = SocketOptions::new();
    opts.handshake_timeout(HANDSHAKE_TIMEOUT)
        .max_frame_size(LIMIT)
        .reconnect_initial(Duration::from_millis(10))
        .reconnect_max(Duration::from_millis(100));
    opts
}

fn partner_options() -> SocketOptions {
    let mut opts = SocketOptions::new();
    opts.reconnect_initial(Duration::from_millis(10))
        .reconnect_max(Duration::from_millis(100));
    opts
}

/// The socket under attack and its well-behaved partner.
enum Pair {
    /// A bound Rep (the victim) and a Req connected to it.
    Rep { rep: EchoRep, req: ReqSocket },
    /// A bound Req (the victim) and a Rep connected to it.
    Req { req: ReqSocket, _rep: EchoRep },
    /// A bound Pub (the victim) and a Sub connected to it.
    Pub {
        publisher: PubSocket,
        sub: SubSocket,
    },
    /// A bound Sub (the victim) and a Pub connected to it.
    Sub {
        sub: SubSocket,
        publisher: PubSocket,
    },
    /// A bound Push (the victim) and a Pull connected to it.
    Push { push: PushSocket, pull: PullSocket },
    /// A bound Pull (the victim) and a Push connected to it.
    Pull { pull: PullSocket, push: PushSocket },
    /// A bound Dealer (the victim) and an echoing Rep connected to it.
    Dealer { dealer: DealerSocket, _rep: EchoRep },
    /// A bound Router (the victim) and a Dealer connected to it.
    Router {
        router: RouterSocket,
        dealer: DealerSocket,
    },
    /// A bound Pair (the victim) and its one peer.
    Exclusive { pair: PairSocket, peer: PairSocket },
}

struct Victim {
    pair: Pair,
    endpoint: Endpoint,
    events: SocketEvents,
    exchanges: u32,
    _dir: Option<tempfile::TempDir>,
}

impl Victim {
    async fn start(kind: Kind, net: Net, options: SocketOptions) -> Victim {
        let (bind, dir) = match net {
            Net::Tcp => ("tcp://127.0.0.1:0".to_owned(), None),
            Net::Ipc => {
                let dir = tempfile::tempdir().expect("tempdir");
                let bind = format!("ipc://{}", dir.path().join("victim.sock").display());
                (bind, Some(dir))
            }
        };
        let wait = Duration::from_secs(10);
        let (pair, endpoint, events) = match kind {
            Kind::Rep => {
                let rep = RepSocket::with_options(options.clone()).unwrap();
                let events = rep.events();
                let endpoint = rep.bind(&bind).await.unwrap();
                let req = ReqSocket::with_options(partner_options()).unwrap();
                req.connect(&endpoint.to_string()).unwrap();
                assert!(req.wait_for_peers(1, wait).await);
                let rep = EchoRep::spawn(rep);
                (Pair::Rep { rep, req }, endpoint, events)
            }
            Kind::Req => {
                let req = ReqSocket::with_options(options.clone()).unwrap();
                let events = req.events();
                let endpoint = req.bind(&bind).await.unwrap();
                let rep = RepSocket::with_options(partner_options()).unwrap();
                rep.connect(&endpoint.to_string()).unwrap();
                assert!(req.wait_for_peers(1, wait).await);
                let rep = EchoRep::spawn(rep);
                (Pair::Req { req, _rep: rep }, endpoint, events)
            }
            Kind::Pub => {
                let publisher = PubSocket::with_options(options.clone()).unwrap();
                let events = publisher.events();
                let endpoint = publisher.bind(&bind).await.unwrap();
                let sub = SubSocket::with_options(partner_options()).unwrap();
                sub.subscribe("t").await;
                sub.connect(&endpoint.to_string()).unwrap();
                assert!(publisher.wait_for_subscribers(1, wait).await);
                (Pair::Pub { publisher, sub }, endpoint, events)
            }
            Kind::Sub => {
                let sub = SubSocket::with_options(options.clone()).unwrap();
                let events = sub.events();
                sub.subscribe("t").await;
                let endpoint = sub.bind(&bind).await.unwrap();
                let publisher = PubSocket::with_options(partner_options()).unwrap();
                publisher.connect(&endpoint.to_string()).unwrap();
                assert!(publisher.wait_for_subscribers(1, wait).await);
                (Pair::Sub { sub, publisher }, endpoint, events)
            }
            Kind::Push => {
                let push = PushSocket::with_options(options.clone()).unwrap();
                let events = push.events();
                let endpoint = push.bind(&bind).await.unwrap();
                let pull = PullSocket::with_options(partner_options()).unwrap();
                pull.connect(&endpoint.to_string()).unwrap();
                assert!(push.wait_for_peers(1, wait).await);
                (Pair::Push { push, pull }, endpoint, events)
            }
            Kind::Pull => {
                let pull = PullSocket::with_options(options.clone()).unwrap();
                let events = pull.events();
                let endpoint = pull.bind(&bind).await.unwrap();
                let push = PushSocket::with_options(partner_options()).unwrap();
                push.connect(&endpoint.to_string()).unwrap();
                assert!(pull.wait_for_peers(1, wait).await);
                (Pair::Pull { pull, push }, endpoint, events)
            }
            Kind::Dealer => {
                let dealer = DealerSocket::with_options(options.clone()).unwrap();
                let events = dealer.events();
                let endpoint = dealer.bind(&bind).await.unwrap();
                let rep = RepSocket::with_options(partner_options()).unwrap();
                rep.connect(&endpoint.to_string()).unwrap();
                assert!(dealer.wait_for_peers(1, wait).await);
                let rep = EchoRep::spawn(rep);
                (Pair::Dealer { dealer, _rep: rep }, endpoint, events)
            }
            Kind::Router => {
                let router = RouterSocket::with_options(options.clone()).unwrap();
                let events = router.events();
                let endpoint = router.bind(&bind).await.unwrap();
                let dealer = DealerSocket::with_options(partner_options()).unwrap();
                dealer.connect(&endpoint.to_string()).unwrap();
                assert!(router.wait_for_peers(1, wait).await);
                (Pair::Router { router, dealer }, endpoint, events)
            }
            Kind::Pair => {
                let pair = PairSocket::with_options(options.clone()).unwrap();
                let events = pair.events();
                let endpoint = pair.bind(&bind).await.unwrap();
                let peer = PairSocket::with_options(partner_options()).unwrap();
                peer.connect(&endpoint.to_string()).unwrap();
                assert!(pair.wait_for_peers(1, wait).await);
                (Pair::Exclusive { pair, peer }, endpoint, events)
            }
        };
        Victim {
            pair,
            endpoint,
            events,
            exchanges: 0,
            _dir: dir,
        }
    }

    async fn stats(&self) -> SocketStats {
        match &self.pair {
            Pair::Rep { rep, .. } => rep.stats().await,
            Pair::Req { req, .. } => req.stats(),
            Pair::Pub { publisher, .. } => publisher.stats(),
            Pair::Sub { sub, .. } => sub.stats(),
            Pair::Push { push, .. } => push.stats(),
            Pair::Pull { pull, .. } => pull.stats(),
            Pair::Dealer { dealer, .. } => dealer.stats(),
            Pair::Router { router, .. } => router.stats(),
            Pair::Exclusive { pair, .. } => pair.stats(),
        }
    }

    /// One request and reply, or one publication, between the victim and
    /// its well-behaved partner.
    async fn exchange(&mut self, when: &str) {
        self.exchanges += 1;
        let payload = Bytes::from(format!("{when} #{}", self.exchanges));
        match &mut self.pair {
            Pair::Rep { req, .. } | Pair::Req { req, .. } => {
                let reply = tokio::time::timeout(HANG, req.request(payload.clone()))
                    .await
                    .unwrap_or_else(|_| panic!("no reply {when} the attack"))
                    .unwrap_or_else(|e| panic!("request {when} the attack failed: {e}"));
                assert_eq!(reply, payload);
            }
            Pair::Pub { publisher, sub } | Pair::Sub { sub, publisher } => {
                let queued = publisher.publish("t", payload.clone()).unwrap();
                assert_eq!(queued, 1, "publication {when} the attack not queued");
                let msg = tokio::time::timeout(HANG, sub.next())
                    .await
                    .unwrap_or_else(|_| panic!("no publication {when} the attack"))
                    .expect("subscriber open");
                assert_eq!(msg.payload(), &payload);
            }
            Pair::Push { push: tx, pull: rx } | Pair::Pull { push: tx, pull: rx } => {
                tx.send(payload.clone()).await.unwrap();
                assert_eq!(next_in_time(rx, when).await, payload);
            }
            Pair::Dealer { dealer, .. } => {
                dealer.send(payload.clone()).await.unwrap();
                assert_eq!(next_in_time(dealer, when).await, payload);
            }
            Pair::Router { router, dealer } => {
                dealer.send(payload.clone()).await.unwrap();
                let (route, message) = next_in_time(router, when).await;
                assert_eq!(message, payload);
                router.send_to(&route, message).await.unwrap();
                assert_eq!(next_in_time(dealer, when).await, payload);
            }
            Pair::Exclusive { pair, peer } => {
                peer.send(payload.clone()).await.unwrap();
                assert_eq!(next_in_time(pair, when).await, payload);
                pair.send(payload.clone()).await.unwrap();
                assert_eq!(next_in_time(peer, when).await, payload);
            }
        }
    }

    /// The exchange while a silent attacker is connected. A Req victim
    /// spreads requests round-robin over its peers, the attacker included:
    /// of two requests made together, one goes to the partner and is
    /// answered at once, the other to the attacker, and fails with
    /// `ConnectionLost` when the heartbeats close that connection.
    async fn exchange_beside_a_silent_peer(&mut self) {
        match &mut self.pair {
            Pair::Push { push, pull: rx } => {
                assert!(
                    push.wait_for_peers(2, HANG).await,
                    "the attacker never came up"
                );
                // One goes to the partner, the other to the attacker (and is
                // lost with its connection: it was written to a peer that
                // never read it).
                push.send("during #1").await.unwrap();
                push.send("during #2").await.unwrap();
                let got = next_in_time(rx, "during").await;
                assert!(got.last().starts_with(b"during #"), "{got:?}");
                return;
            }
            Pair::Dealer { dealer, .. } => {
                assert!(
                    dealer.wait_for_peers(2, HANG).await,
                    "the attacker never came up"
                );
                dealer.send("during #1").await.unwrap();
                dealer.send("during #2").await.unwrap();
                let got = next_in_time(dealer, "during").await;
                assert!(got.last().starts_with(b"during #"), "{got:?}");
                return;
            }
            _ => {}
        }
        let Pair::Req { req, .. } = &self.pair else {
            return self.exchange("during").await;
        };
        assert!(
            req.wait_for_peers(2, HANG).await,
            "the attacker never came up"
        );
        let (a, b) = tokio::time::timeout(HANG, async {
            tokio::join!(req.request("during #1"), req.request("during #2"))
        })
        .await
        .expect("requests never ended");
        let (answered, lost) = match (a, b) {
            (Ok(reply), Err(e)) | (Err(e), Ok(reply)) => (reply, e),
            other => panic!("expected one reply and one loss, got {other:?}"),
        };
        assert!(answered.starts_with(b"during #"), "{answered:?}");
        assert!(matches!(lost, ReqError::ConnectionLost), "{lost:?}");
    }

    /// Waits for the event reporting the attacker, and returns its peer.
    async fn offender_event(
        &mut self,
        seen_as: &Option<PeerAddr>,
        handshake: bool,
    ) -> (PeerAddr, String) {
        let bound = self.endpoint.clone();
        let is_attacker = |peer: &PeerAddr| match (seen_as, peer) {
            (Some(expected), peer) => expected == peer,
            (None, PeerAddr::Ipc { path, .. }) => Some(path.as_path()) == bound.path(),
            (None, _) => false,
        };
        tokio::time::timeout(HANG, async {
            loop {
                let event = self.events.next().await.expect("events");
                let found = match event {
                    SocketEvent::HandshakeFailed { peer, error } if handshake => {
                        Some((peer, error))
                    }
                    SocketEvent::PeerMisbehaved { peer, error } if !handshake => {
                        Some((peer, error))
                    }
                    _ => None,
                };
                if let Some((peer, error)) = found.filter(|(peer, _)| is_attacker(peer)) {
                    return (peer, error);
                }
            }
        })
        .await
        .expect("no event reported the attacker")
    }
}

/// The next item of `stream`, failing the test on a hang or an end.
async fn next_in_time<S: futures::Stream + Unpin>(stream: &mut S, when: &str) -> S::Item {
    tokio::time::timeout(HANG, stream.next())
        .await
        .unwrap_or_else(|_| panic!("nothing came {when} the attack"))
        .unwrap_or_else(|| panic!("the socket closed {when} the attack"))
}

/// A frame a peer of type `role` would send, with a body over [`LIMIT`];
/// only its header goes out.
fn oversized_header(role: SocketType) -> Bytes {
    let payload = Bytes::from(vec![7u8; LIMIT + 1]);
    let frame = match role {
        SocketType::Rep => Frame::Reply { id: 1, payload },
        SocketType::Pub => Frame::Publish {
            topic: Bytes::from_static(b"t"),
            seq: 1,
            payload,
        },
        _ => Frame::Request { id: 1, payload },
    };
    let mut out = BytesMut::new();
    FrameCodec::with_options(raw::big_limits())
        .encode_with(&frame, Compression::None, &mut out)
        .expect("encode with a larger limit");
    Bytes::copy_from_slice(&out[..HEADER_LEN])
}

/// A compressed frame of 1 MiB of zeros: small on the wire, 16 times the
/// limit once expanded. With `lie`, the declared original size is patched
/// down to under the limit, so only expanding it finds the bomb. (A Request
/// frame whatever the victim: the decoder refuses it before any pattern
/// looks at the kind.)
fn bomb(lie: bool) -> BytesMut {
    let zeros = vec![0u8; 16 * LIMIT];
    let algorithm = if lie {
        Compression::Gzip
    } else {
        Compression::Zstd
    };
    let compressed = msg_socket::wire::compression::compress(algorithm, &zeros).unwrap();
    assert!(
        compressed.len() < LIMIT / 8,
        "the bomb is small on the wire"
    );
    let mut out = BytesMut::new();
    FrameCodec::with_options(raw::big_limits())
        .encode_with(
            &Frame::Request {
                id: 1,
                payload: Bytes::from(zeros),
            },
            algorithm,
            &mut out,
        )
        .unwrap();
    assert!(out.len() < LIMIT, "the frame itself is within the limit");
    assert_eq!(out[6] & 0b111, algorithm.id(), "the frame is compressed");
    if lie {
        // header (7) + request id (8), then the original length (u32).
        let at = HEADER_LEN + 8;
        out[at..at + 4].copy_from_slice(&1000u32.to_be_bytes());
    }
    out
}

/// Runs `attack` against a socket of `kind` over `net` and checks every
/// promise listed in the module docs.
async fn attack(kind: Kind, net: Net, attack: Attack) {
    raw::record_panics();
    let (logs, _guard) = raw::capture_warnings();
    let mut victim = Victim::start(kind, net, attack.victim_options()).await;
    victim.exchange("before").await;
    let before = victim.stats().await;

    let started = Instant::now();
    let mut attacker = RawPeer::connect(&victim.endpoint).await;
    match attack {
        Attack::Garbage => attacker.send(b"GET / HTTP/1.1\r\nHost: msg\r\n\r\n").await,
        Attack::WrongSocketType => {
            let hello = Hello::new(kind.incompatible(), Bytes::from_static(b"attacker"), None);
            attacker.send(&raw::hello_bytes(&hello)).await;
        }
        Attack::FrameTooLarge => {
            attacker.handshake_as(kind.peer()).await;
            attacker.send(&oversized_header(kind.peer())).await;
        }
        Attack::DeclaredBomb => {
            attacker.handshake_as(kind.peer()).await;
            attacker.send(&bomb(false)).await;
        }
        Attack::LyingBomb => {
            attacker.handshake_as(kind.peer()).await;
            attacker.send(&bomb(true)).await;
        }
        Attack::HalfHello => {
            let hello = Hello::new(
                kind.peer(),
                Bytes::from_static(b"attacker"),
                Some(Bytes::from(vec![b'k'; 64])),
            );
            let bytes = raw::hello_bytes(&hello);
            attacker.send(&bytes[..bytes.len() / 2]).await;
        }
        Attack::Silent => {}
        Attack::SilentAfterHandshake => attacker.handshake_as(kind.peer()).await,
    }
    if attack.stalls() {
        // The attacker is connected and stuck in its handshake right now.
        victim.exchange("during").await;
    }
    if attack == Attack::SilentAfterHandshake {
        // The attacker is connected, past its handshake, and silent.
        victim.exchange_beside_a_silent_peer().await;
    }

    let seen_as = attacker.seen_as.clone();
    let closed = attacker.read_until_closed().await;
    let elapsed = started.elapsed();

    // What the offender was told before the stream closed.
    match attack {
        Attack::Garbage => assert!(
            closed.bytes.is_empty(),
            "garbage gets no answer, got {:?}",
            closed.bytes
        ),
        Attack::WrongSocketType | Attack::HalfHello | Attack::Silent => {
            let mut bytes = closed.bytes.clone();
            let answer = msg_socket::wire::HandshakeCodec::new()
                .decode_answer(&mut bytes)
                .expect("a valid answer")
                .expect("a whole answer before EOF");
            let Answer::Reject { code, text, .. } = answer else {
                panic!("expected a rejection, got {answer:?}");
            };
            if attack == Attack::WrongSocketType {
                assert_eq!(code, Reason::IncompatibleSocket);
                let (theirs, ours) = (kind.incompatible().as_str(), kind.own().as_str());
                assert!(text.contains(theirs) && text.contains(ours), "{text}");
            } else {
                assert_eq!(code, Reason::HandshakeTimeout, "{text}");
                assert!(
                    elapsed >= HANDSHAKE_TIMEOUT,
                    "closed after {elapsed:?}, before the handshake timeout"
                );
            }
        }
        Attack::FrameTooLarge
        | Attack::DeclaredBomb
        | Attack::LyingBomb
        | Attack::SilentAfterHandshake => {
            // The answer to the Hello was read already; any Subscribe or
            // Ping before the Close is fine.
            let frames = frames_in(closed.bytes.clone());
            let close = frames.iter().find_map(|f| match f {
                Frame::Close { code, text } => Some((*code, text.clone())),
                _ => None,
            });
            let (code, text) = close.unwrap_or_else(|| {
                panic!("no Close frame before the socket closed, got {frames:?}")
            });
            if attack == Attack::FrameTooLarge {
                assert_eq!(code, Reason::FrameTooLarge, "{text}");
            } else if attack == Attack::SilentAfterHandshake {
                assert_eq!(code, Reason::ProtocolError, "{text}");
                assert!(text.contains("heartbeat"), "{text}");
                assert!(
                    frames.iter().any(|f| matches!(f, Frame::Ping { .. })),
                    "closed without pinging first: {frames:?}"
                );
                assert!(
                    elapsed >= HEARTBEAT_TIMEOUT,
                    "closed after {elapsed:?}, before the heartbeat timeout"
                );
            } else {
                assert_eq!(code, Reason::ProtocolError, "{text}");
                assert!(text.contains("decompressed"), "{text}");
            }
        }
    }
    assert!(
        !closed.reset || attack == Attack::Garbage,
        "the socket reset the stream instead of closing it"
    );

    let (peer, error) = victim
        .offender_event(&seen_as, !attack.after_handshake())
        .await;
    let after = victim.stats().await;
    if attack == Attack::SilentAfterHandshake {
        assert!(error.contains("heartbeat"), "{error}");
        assert_eq!(
            after.heartbeat_timeouts,
            before.heartbeat_timeouts + 1,
            "{error}"
        );
        assert_eq!(after.protocol_errors, before.protocol_errors);
        assert_eq!(after.handshake_failures, before.handshake_failures);
    } else if attack.after_handshake() {
        assert_eq!(after.protocol_errors, before.protocol_errors + 1, "{error}");
        assert_eq!(after.handshake_failures, before.handshake_failures);
        if attack == Attack::FrameTooLarge {
            // Only the header was read: nothing was buffered for the body.
            assert_eq!(
                after.bytes_received - before.bytes_received,
                HEADER_LEN as u64
            );
        }
    } else {
        assert_eq!(
            after.handshake_failures,
            before.handshake_failures + 1,
            "{error}"
        );
        assert_eq!(after.protocol_errors, before.protocol_errors);
        if attack.stalls() {
            assert!(error.contains("timed out"), "{error}");
        }
    }
    assert_eq!(after.active_peers, 1, "only the partner is left");

    let warned = logs.text();
    let line = warned
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&peer.to_string()));
    assert!(
        line.is_some(),
        "no warning names the offender {peer}; logged:\n{warned}"
    );

    victim.exchange("after").await;
    raw::assert_no_panic_on_this_thread();
}

macro_rules! every_attack {
    ($($module:ident => $kind:expr, $net:expr;)*) => {$(
        mod $module {
            use super::*;

            #[tokio::test]
            async fn garbage_instead_of_a_handshake_is_dropped_counted_and_logged() {
                attack($kind, $net, Attack::Garbage).await;
            }

            #[tokio::test]
            async fn a_hello_for_an_incompatible_socket_is_rejected_with_the_reason() {
                attack($kind, $net, Attack::WrongSocketType).await;
            }

            #[tokio::test]
            async fn a_frame_over_max_frame_size_is_refused_from_its_header_alone() {
                attack($kind, $net, Attack::FrameTooLarge).await;
            }

            #[tokio::test]
            async fn a_decompression_bomb_declaring_too_much_is_refused() {
                attack($kind, $net, Attack::DeclaredBomb).await;
            }

            #[tokio::test]
            async fn a_decompression_bomb_lying_about_its_size_is_refused() {
                attack($kind, $net, Attack::LyingBomb).await;
            }

            #[tokio::test]
            async fn a_handshake_that_never_finishes_is_cut_at_the_timeout() {
                attack($kind, $net, Attack::HalfHello).await;
            }

            #[tokio::test]
            async fn a_peer_that_connects_and_says_nothing_is_cut_at_the_timeout() {
                attack($kind, $net, Attack::Silent).await;
            }

            #[tokio::test]
            async fn a_peer_silent_after_its_handshake_is_cut_by_heartbeats() {
                attack($kind, $net, Attack::SilentAfterHandshake).await;
            }
        }
    )*};
}

every_attack! {
    rep_over_tcp => Kind::Rep, Net::Tcp;
    rep_over_ipc => Kind::Rep, Net::Ipc;
    req_over_tcp => Kind::Req, Net::Tcp;
    req_over_ipc => Kind::Req, Net::Ipc;
    pub_over_tcp => Kind::Pub, Net::Tcp;
    pub_over_ipc => Kind::Pub, Net::Ipc;
    sub_over_tcp => Kind::Sub, Net::Tcp;
    sub_over_ipc => Kind::Sub, Net::Ipc;
    push_over_tcp => Kind::Push, Net::Tcp;
    push_over_ipc => Kind::Push, Net::Ipc;
    pull_over_tcp => Kind::Pull, Net::Tcp;
    pull_over_ipc => Kind::Pull, Net::Ipc;
    dealer_over_tcp => Kind::Dealer, Net::Tcp;
    dealer_over_ipc => Kind::Dealer, Net::Ipc;
    router_over_tcp => Kind::Router, Net::Tcp;
    router_over_ipc => Kind::Router, Net::Ipc;
}

/// The attacks before a handshake completes, for a PAIR: with its one peer
/// connected, an attacker is refused in the handshake (tested in
/// `bad_input_patterns`), so the attacks after one run there, on a PAIR
/// without a peer.
macro_rules! handshake_attacks {
    ($($module:ident => $kind:expr, $net:expr;)*) => {$(
        mod $module {
            use super::*;

            #[tokio::test]
            async fn garbage_instead_of_a_handshake_is_dropped_counted_and_logged() {
                attack($kind, $net, Attack::Garbage).await;
            }

            #[tokio::test]
            async fn a_hello_for_an_incompatible_socket_is_rejected_with_the_reason() {
                attack($kind, $net, Attack::WrongSocketType).await;
            }

            #[tokio::test]
            async fn a_handshake_that_never_finishes_is_cut_at_the_timeout() {
                attack($kind, $net, Attack::HalfHello).await;
            }

            #[tokio::test]
            async fn a_peer_that_connects_and_says_nothing_is_cut_at_the_timeout() {
                attack($kind, $net, Attack::Silent).await;
            }
        }
    )*};
}

handshake_attacks! {
    pair_over_tcp => Kind::Pair, Net::Tcp;
    pair_over_ipc => Kind::Pair, Net::Ipc;
}
