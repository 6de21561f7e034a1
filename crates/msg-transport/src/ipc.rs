//! Unix domain sockets.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

use crate::endpoint::next_conn_id;
use crate::tcp::check_scheme;
use crate::{Endpoint, Listener, PeerAddr, Scheme, Transport, TransportError};

/// The Unix domain socket transport (`ipc:///path`). Unix only, feature `ipc`.
///
/// # Socket files
///
/// Binding creates a socket file at the path. If a file is already there:
///
/// - a socket that accepts a connection belongs to a live listener: the bind fails
///   with [`TransportError::AddrInUse`] (the probe connection is closed at once);
/// - a socket nobody answers on is stale, left by a process that died: it is removed
///   and the bind goes ahead;
/// - anything else (a regular file, a directory) fails with
///   [`TransportError::NotASocket`] and is never touched.
///
/// Dropping the [`IpcListener`] removes the socket file, but only if the path still
/// holds the socket it created (a later listener may have replaced it).
///
/// Unix sockets have no peer addresses, so every connection gets a process-unique id
/// in [`PeerAddr::Ipc`]: two clients of one listener are always two peers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ipc;

impl Ipc {
    /// The IPC transport.
    pub fn new() -> Self {
        Ipc
    }
}

impl Transport for Ipc {
    type Conn = UnixStream;
    type Listener = IpcListener;

    async fn bind(&self, endpoint: &Endpoint) -> Result<IpcListener, TransportError> {
        check_scheme(endpoint, Scheme::Ipc)?;
        let path = ipc_path(endpoint);
        remove_stale_socket(endpoint, path).await?;
        let inner =
            UnixListener::bind(path).map_err(|e| TransportError::io("bind", endpoint, e))?;
        // Remember which file we created, so that dropping this listener never
        // deletes a socket some later listener put at the same path.
        let identity = std::fs::symlink_metadata(path)
            .map(|m| (m.dev(), m.ino()))
            .map_err(|e| TransportError::io("bind", endpoint, e))?;
        debug!(endpoint = %endpoint, "ipc listener bound");
        Ok(IpcListener {
            inner,
            path: path.to_path_buf(),
            identity,
            local_endpoint: endpoint.clone(),
        })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<(UnixStream, PeerAddr), TransportError> {
        check_scheme(endpoint, Scheme::Ipc)?;
        let path = ipc_path(endpoint);
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| match e.kind() {
                // No socket file and a socket nobody listens on both mean "nothing
                // listening", which is what a reconnect loop wants to know.
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    TransportError::Refused {
                        endpoint: endpoint.clone(),
                    }
                }
                _ => TransportError::io("connect to", endpoint, e),
            })?;
        let peer = PeerAddr::Ipc {
            path: path.to_path_buf(),
            conn_id: next_conn_id(),
        };
        debug!(endpoint = %endpoint, peer = %peer, "ipc connected");
        Ok((stream, peer))
    }
}

fn ipc_path(endpoint: &Endpoint) -> &Path {
    match endpoint {
        Endpoint::Ipc { path } => path,
        // check_scheme ran first.
        _ => Path::new(""),
    }
}

/// Clears the way for a bind at `path`, following the rules in [`Ipc`]'s docs.
async fn remove_stale_socket(endpoint: &Endpoint, path: &Path) -> Result<(), TransportError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TransportError::io("bind", endpoint, e)),
    };
    if !meta.file_type().is_socket() {
        return Err(TransportError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match UnixStream::connect(path).await {
        Ok(_probe) => Err(TransportError::AddrInUse {
            endpoint: endpoint.clone(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            debug!(endpoint = %endpoint, "removing stale ipc socket file");
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                // Someone else cleaned it up first; fine.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(TransportError::io("remove stale socket for", endpoint, e)),
            }
        }
        Err(e) => Err(TransportError::io("probe existing socket at", endpoint, e)),
    }
}

/// A bound Unix domain socket listener. Removes its socket file when dropped.
#[derive(Debug)]
pub struct IpcListener {
    inner: UnixListener,
    path: PathBuf,
    identity: (u64, u64),
    local_endpoint: Endpoint,
}

impl Listener for IpcListener {
    type Conn = UnixStream;

    fn local_endpoint(&self) -> &Endpoint {
        &self.local_endpoint
    }

    async fn accept(&mut self) -> Result<(UnixStream, PeerAddr), TransportError> {
        let (stream, _unnamed) = self
            .inner
            .accept()
            .await
            .map_err(|e| TransportError::io("accept on", &self.local_endpoint, e))?;
        let peer = PeerAddr::Ipc {
            path: self.path.clone(),
            conn_id: next_conn_id(),
        };
        debug!(endpoint = %self.local_endpoint, peer = %peer, "ipc accepted");
        Ok((stream, peer))
    }
}

impl Drop for IpcListener {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == self.identity)
            .unwrap_or(false);
        if ours {
            if let Err(error) = std::fs::remove_file(&self.path) {
                warn!(path = %self.path.display(), %error, "cannot remove ipc socket file");
            }
        }
    }
}
