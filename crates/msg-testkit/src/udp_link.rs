//! A UDP link on loopback that a test can cut and heal, for QUIC outage tests.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A relay between QUIC clients and one server, all on `127.0.0.1`, that drops every
/// datagram in both directions while it is [cut](UdpLink::cut).
///
/// Clients send to [`UdpLink::addr`]; the link forwards each client's datagrams to
/// the server from a socket of that client's own, so the server sees one address per
/// client (as through a NAT) and its answers find their way back. Cutting the link
/// is what pulling a cable does to UDP: datagrams vanish, nobody is told, and both
/// ends learn of it only through their own timers.
pub struct UdpLink {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl UdpLink {
    /// A link in front of the server at `server`, healed.
    ///
    /// # Errors
    ///
    /// If the link's socket cannot be bound.
    pub async fn new(server: SocketAddr) -> io::Result<UdpLink> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(relay(front, server, cut.clone(), dropped.clone()));
        Ok(UdpLink {
            addr,
            cut,
            dropped,
            task,
        })
    }

    /// The address clients send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every datagram from now on, both ways, until [`UdpLink::heal`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Forwards datagrams again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// How many datagrams the link has dropped while cut.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for UdpLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards datagrams from clients to `server` and back, dropping them while `cut`.
async fn relay(
    front: Arc<UdpSocket>,
    server: SocketAddr,
    cut: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) {
    // One socket towards the server per client, and the task that carries the
    // server's answers back; both end with the relay.
    let mut clients: HashMap<SocketAddr, (Arc<UdpSocket>, JoinHandle<()>)> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, from)) = front.recv_from(&mut buf).await else {
            break;
        };
        if cut.load(Ordering::SeqCst) {
            dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let back = match clients.entry(from) {
            Entry::Occupied(known) => known.get().0.clone(),
            Entry::Vacant(new) => {
                let Ok(back) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                let back = Arc::new(back);
                let answers = tokio::spawn(carry_back(
                    back.clone(),
                    front.clone(),
                    from,
                    cut.clone(),
                    dropped.clone(),
                ));
                new.insert((back.clone(), answers));
                back
            }
        };
        // A failed send is a lost datagram, which QUIC recovers from.
        let _ = back.send_to(&buf[..len], server).await;
    }
    for (_, (_, answers)) in clients {
        answers.abort();
    }
}

/// Carries the server's datagrams on `back` to the client at `client`.
async fn carry_back(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    cut: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(len) = back.recv(&mut buf).await {
        if cut.load(Ordering::SeqCst) {
            dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let _ = front.send_to(&buf[..len], client).await;
    }
}
