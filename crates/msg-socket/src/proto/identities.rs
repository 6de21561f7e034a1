//! Which connection carries each identity, for the patterns that route by
//! identity (PEER and ROUTER), and what a repeated identity means.
//!
//! A connection announcing an identity that is already connected replaces
//! the connected one only if it authenticated as the same principal (see
//! [`Principal`](crate::auth::Principal)): a peer reconnecting before its old
//! connection was found dead takes over its identity, and anyone else is
//! refused, so that no client can push another off and take its messages.
//! Without authentication every connection is the same (anonymous)
//! principal, and the newer connection wins as before.
//!
//! The refusal normally happens in the server's handshake
//! ([`Identities::admit`]): the newcomer hears a Reject with
//! [`Reason::IdentityInUse`] and never comes up. Two handshakes for one
//! identity can pass it together, and a client's connection is not admitted
//! at all; so [`Identities::conn_up`] decides again, and closes a newcomer
//! of another principal with the same reason.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use msg_wire::Reason;

use crate::driver::conn::PeerInfo;
use crate::proto::Violation;
use crate::proto::conns::{ConnId, ConnTable};

/// What a refused connection is told.
pub(crate) const IDENTITY_IN_USE: &str = "identity in use: another principal is connected with it";

/// What became of a connection that came up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Up {
    /// It is the first connection for its identity.
    New,
    /// It replaced the identity's connection, which is being closed.
    Replaced(ConnId),
    /// Another principal holds its identity: it is being closed, and takes
    /// nothing meanwhile.
    Refused,
}

/// The connection each identity's frames go on.
#[derive(Debug, Default)]
pub(crate) struct Identities {
    routes: HashMap<Bytes, ConnId>,
    /// Connections refused after they came up, until they are down.
    refused: HashSet<ConnId>,
    /// Connections refused so far, in the handshake or after.
    pub(crate) refusals: u64,
}

impl Identities {
    /// The connection up for `identity`.
    pub(crate) fn route(&self, identity: &[u8]) -> Option<ConnId> {
        self.routes.get(identity).copied()
    }

    /// The identities connected now.
    pub(crate) fn identities(&self) -> impl Iterator<Item = &Bytes> {
        self.routes.keys()
    }

    /// Whether `conn` was refused (and is on its way out).
    pub(crate) fn is_refused(&self, conn: ConnId) -> bool {
        self.refused.contains(&conn)
    }

    /// Whether `peer`, in its handshake, may take its identity: an `Err`
    /// when another principal is connected with it.
    pub(crate) fn admit<S>(
        &mut self,
        conns: &ConnTable<S>,
        peer: &PeerInfo,
    ) -> Result<(), Violation> {
        if self.held_by_another(conns, peer) {
            self.refusals += 1;
            return Err((Reason::IdentityInUse, IDENTITY_IN_USE));
        }
        Ok(())
    }

    /// `peer`'s connection, already in `conns`, came up: it takes its
    /// identity, replacing the connection of the same principal, unless
    /// another principal holds it; then it is closed.
    pub(crate) fn conn_up<S>(&mut self, conns: &mut ConnTable<S>, peer: &PeerInfo) -> Up {
        let id = peer.conn_id;
        if self.held_by_another(conns, peer) {
            self.refusals += 1;
            self.refused.insert(id);
            tracing::warn!(
                identity = %peer.identity.escape_ascii(),
                peer = %peer.addr,
                conn = id,
                "refused a connection: {IDENTITY_IN_USE}"
            );
            conns.close(id, Reason::IdentityInUse, IDENTITY_IN_USE, false);
            return Up::Refused;
        }
        match self.routes.insert(peer.identity.clone(), id) {
            None => Up::New,
            Some(old) => {
                tracing::debug!(
                    identity = %peer.identity.escape_ascii(),
                    old,
                    new = id,
                    "a newer connection of the same principal replaces the old one"
                );
                conns.close(old, Reason::Normal, "replaced by a newer connection", false);
                Up::Replaced(old)
            }
        }
    }

    /// `conn`, of `identity`, is down; returns whether it was the
    /// identity's route (and the identity is now gone).
    pub(crate) fn conn_down(&mut self, identity: &Bytes, conn: ConnId) -> bool {
        self.refused.remove(&conn);
        if self.routes.get(identity) == Some(&conn) {
            self.routes.remove(identity);
            return true;
        }
        false
    }

    /// Whether the identity `peer` announces is up on a connection of
    /// another principal.
    fn held_by_another<S>(&self, conns: &ConnTable<S>, peer: &PeerInfo) -> bool {
        self.route(&peer.identity)
            .and_then(|held| conns.get(held))
            .is_some_and(|holder| holder.peer.principal != peer.principal)
    }
}
