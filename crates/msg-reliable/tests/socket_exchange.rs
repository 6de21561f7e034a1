//! Two reliable sockets exchange messages both ways, over every
//! transport: each message once, in order, acknowledged.

use std::time::Duration;

use crate::support::*;
use msg_reliable::{MemoryBackend, ReliableSocket};

const COUNT: u64 = 1_000;

async fn exchange_both_ways(transport: &str) {
    let (a, b, bind, _dir) = memory_pair(transport, fast()).await;
    link(&a, &b, &bind).await;

    tokio::join!(
        send_all(&a, "a", "b", 1, COUNT),
        send_all(&b, "b", "a", 1, COUNT),
        receive_all(&a, "b", "a", 1, COUNT),
        receive_all(&b, "a", "b", 1, COUNT),
    );
    tokio::time::timeout(WAIT, async {
        a.wait_acked(&pid("b"), COUNT).await.unwrap();
        b.wait_acked(&pid("a"), COUNT).await.unwrap();
    })
    .await
    .expect("everything acknowledged");
    assert_nothing_delivered(&a);
    assert_nothing_delivered(&b);
    assert!(a.shutdown(Duration::from_secs(1)).await.is_complete());
    assert!(b.shutdown(Duration::from_secs(1)).await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_both_ways_over_tcp() {
    exchange_both_ways("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_both_ways_over_ipc() {
    exchange_both_ways("ipc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_both_ways_over_tls() {
    exchange_both_ways("tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_both_ways_over_quic() {
    exchange_both_ways("quic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_both_ways_over_inproc() {
    exchange_both_ways("inproc").await;
}

/// A network of your own: two in-memory queues behind the `Link` trait.
mod custom_link {
    use msg_reliable::{Link, LinkEvent, PeerId, ReliableError};
    use msg_wire::Frame;
    use tokio::sync::{Mutex, mpsc};

    pub(crate) struct ChannelLink {
        me: PeerId,
        to_peer: mpsc::UnboundedSender<LinkEvent>,
        from_peer: Mutex<mpsc::UnboundedReceiver<LinkEvent>>,
    }

    /// Two connected links, each already reporting the other one up.
    pub(crate) fn pair(a: PeerId, b: PeerId) -> (ChannelLink, ChannelLink) {
        let (to_b, from_a) = mpsc::unbounded_channel();
        let (to_a, from_b) = mpsc::unbounded_channel();
        to_a.send(LinkEvent::Up(b.clone())).unwrap();
        to_b.send(LinkEvent::Up(a.clone())).unwrap();
        (
            ChannelLink {
                me: a,
                to_peer: to_b,
                from_peer: Mutex::new(from_b),
            },
            ChannelLink {
                me: b,
                to_peer: to_a,
                from_peer: Mutex::new(from_a),
            },
        )
    }

    impl Link for ChannelLink {
        async fn send(&self, _peer: &PeerId, frame: Frame) -> Result<(), ReliableError> {
            let peer = self.me.clone();
            self.to_peer
                .send(LinkEvent::Frame { peer, frame })
                .map_err(|_| ReliableError::Closed)
        }

        async fn recv(&self) -> Option<LinkEvent> {
            self.from_peer.lock().await.recv().await
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_custom_link_carries_the_protocol() {
    let (link_a, link_b) = custom_link::pair(pid("a"), pid("b"));
    let a = ReliableSocket::open_with_link(pid("a"), fast(), MemoryBackend::new(), link_a)
        .await
        .unwrap();
    let b = ReliableSocket::open_with_link(pid("b"), fast(), MemoryBackend::new(), link_b)
        .await
        .unwrap();
    assert!(matches!(
        a.bind("inproc://nope").await,
        Err(msg_reliable::ReliableError::CustomLink)
    ));
    tokio::join!(
        send_all(&a, "a", "b", 1, COUNT),
        send_all(&b, "b", "a", 1, COUNT),
        receive_all(&a, "b", "a", 1, COUNT),
        receive_all(&b, "a", "b", 1, COUNT),
    );
    a.wait_acked(&pid("b"), COUNT).await.unwrap();
    b.wait_acked(&pid("a"), COUNT).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn auto_ack_mode_needs_no_ack_and_delivers_once() {
    let mut opts = fast();
    opts.ack_mode(msg_reliable::AckMode::Auto);
    let (link_a, link_b) = custom_link::pair(pid("a"), pid("b"));
    let a = ReliableSocket::open_with_link(pid("a"), fast(), MemoryBackend::new(), link_a)
        .await
        .unwrap();
    let b_store = MemoryBackend::new();
    let b = ReliableSocket::open_with_link(pid("b"), opts.clone(), b_store.clone(), link_b)
        .await
        .unwrap();
    send_all(&a, "a", "b", 1, 10).await;
    use futures::StreamExt;
    let mut deliveries = b.deliveries();
    for seq in 1..=10 {
        let d = deliveries.next().await.unwrap();
        assert_eq!(d.seq(), seq);
        assert_eq!(d.payload(), &payload("a", "b", seq));
    }
    a.wait_acked(&pid("b"), 10).await.unwrap();
    // Only the watermark was stored: a restart delivers nothing again.
    drop(deliveries);
    b.shutdown(Duration::from_secs(1)).await;
    let (_, link_b) = custom_link::pair(pid("a"), pid("b"));
    let b = ReliableSocket::open_with_link(pid("b"), opts, b_store, link_b)
        .await
        .unwrap();
    // A round trip to the socket's task: it has restored everything.
    assert!(b.pending().await.unwrap().is_empty());
    assert_nothing_delivered(&b);
}
