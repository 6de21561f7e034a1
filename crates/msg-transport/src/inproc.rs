//! The in-process transport: a registry of names and `tokio::io::duplex` pipes.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tracing::debug;

use crate::endpoint::next_conn_id;
use crate::tcp::check_scheme;
use crate::{Endpoint, Listener, PeerAddr, Scheme, Transport, TransportError};

/// Bytes each direction of an inproc pipe buffers before a writer waits for the reader.
pub const INPROC_BUFFER_SIZE: usize = 256 * 1024;

/// Connections an inproc listener queues before `connect` waits for `accept`.
const BACKLOG: usize = 128;

type Pending = (DuplexStream, u64);

struct Registration {
    listener_id: u64,
    tx: mpsc::Sender<Pending>,
}

/// Every bound inproc name in this process.
static REGISTRY: LazyLock<Mutex<HashMap<String, Registration>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn registry() -> MutexGuard<'static, HashMap<String, Registration>> {
    // The map stays consistent even if a holder panicked: every critical section
    // is a single insert, get or remove.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The in-process transport (`inproc://name`).
///
/// Binding registers the name in a process-wide registry; connecting looks it up and
/// hands the listener one end of a [`tokio::io::duplex`] pipe with
/// [`INPROC_BUFFER_SIZE`] bytes of buffer each way. No syscalls, no copies beyond the
/// pipe, and it works under `#[tokio::test(start_paused = true)]`, which makes it the
/// transport for deterministic tests.
///
/// - Binding a name that is already bound fails with [`TransportError::AddrInUse`].
/// - Dropping the listener unregisters the name; it can be bound again at once.
/// - Connecting to a name nobody has bound fails at once with
///   [`TransportError::Refused`].
/// - Up to 128 connections wait for `accept`; further `connect`s wait for room.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inproc;

impl Inproc {
    /// The inproc transport.
    pub fn new() -> Self {
        Inproc
    }
}

fn inproc_name(endpoint: &Endpoint) -> &str {
    match endpoint {
        Endpoint::Inproc { name } => name,
        _ => "",
    }
}

impl Transport for Inproc {
    type Conn = DuplexStream;
    type Listener = InprocListener;

    async fn bind(&self, endpoint: &Endpoint) -> Result<InprocListener, TransportError> {
        check_scheme(endpoint, Scheme::Inproc)?;
        let name = inproc_name(endpoint);
        let (tx, rx) = mpsc::channel(BACKLOG);
        let listener_id = next_conn_id();
        {
            let mut map = registry();
            if map.contains_key(name) {
                return Err(TransportError::AddrInUse {
                    endpoint: endpoint.clone(),
                });
            }
            map.insert(name.to_owned(), Registration { listener_id, tx });
        }
        debug!(endpoint = %endpoint, "inproc listener bound");
        Ok(InprocListener {
            rx,
            name: name.to_owned(),
            listener_id,
            local_endpoint: endpoint.clone(),
        })
    }

    async fn connect(
        &self,
        endpoint: &Endpoint,
    ) -> Result<(DuplexStream, PeerAddr), TransportError> {
        check_scheme(endpoint, Scheme::Inproc)?;
        let name = inproc_name(endpoint);
        let refused = || TransportError::Refused {
            endpoint: endpoint.clone(),
        };
        // Clone the sender and let go of the lock before waiting on the channel.
        let tx = registry()
            .get(name)
            .map(|r| r.tx.clone())
            .ok_or_else(refused)?;
        let (ours, theirs) = tokio::io::duplex(INPROC_BUFFER_SIZE);
        let conn_id = next_conn_id();
        tx.send((theirs, conn_id)).await.map_err(|_| refused())?;
        let peer = PeerAddr::Inproc {
            name: name.to_owned(),
            conn_id,
        };
        debug!(endpoint = %endpoint, peer = %peer, "inproc connected");
        Ok((ours, peer))
    }
}

/// A bound inproc name. Dropping it unregisters the name.
#[derive(Debug)]
pub struct InprocListener {
    rx: mpsc::Receiver<Pending>,
    name: String,
    listener_id: u64,
    local_endpoint: Endpoint,
}

impl Listener for InprocListener {
    type Conn = DuplexStream;

    fn local_endpoint(&self) -> &Endpoint {
        &self.local_endpoint
    }

    async fn accept(&mut self) -> Result<(DuplexStream, PeerAddr), TransportError> {
        // The registry holds a sender for as long as this listener lives, so the
        // channel cannot close under us.
        let (stream, conn_id) = self.rx.recv().await.ok_or(TransportError::Closed)?;
        let peer = PeerAddr::Inproc {
            name: self.name.clone(),
            conn_id,
        };
        debug!(endpoint = %self.local_endpoint, peer = %peer, "inproc accepted");
        Ok((stream, peer))
    }
}

impl Drop for InprocListener {
    fn drop(&mut self) {
        let mut map = registry();
        if map
            .get(&self.name)
            .is_some_and(|r| r.listener_id == self.listener_id)
        {
            map.remove(&self.name);
        }
    }
}
