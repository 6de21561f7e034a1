//! Handshake decisions: may these two sockets talk?
//!
//! The byte-level handshake lives in `msg-wire`; the I/O in the driver. What
//! is left, and tested here, is the verdict.

use bytes::Bytes;
use msg_wire::{Answer, Hello, PROTOCOL_VERSION, Reason, SocketType};

use crate::error::HandshakeError;

/// The server's verdict on a client's Hello (authentication comes after).
pub(crate) fn check_hello(local: SocketType, hello: &Hello) -> Result<(), (Reason, String)> {
    if hello.version != PROTOCOL_VERSION {
        return Err((
            Reason::UnsupportedVersion,
            format!(
                "protocol version {} is not supported (this side speaks {PROTOCOL_VERSION})",
                hello.version
            ),
        ));
    }
    if !local.is_compatible(hello.socket_type) {
        return Err((
            Reason::IncompatibleSocket,
            format!(
                "a {} socket cannot talk to a {local} socket",
                hello.socket_type
            ),
        ));
    }
    if local == SocketType::Peer && hello.identity.is_empty() {
        return Err((
            Reason::ProtocolError,
            "a PEER socket must announce a non-empty identity".to_owned(),
        ));
    }
    Ok(())
}

/// The client's verdict on the server's answer: the server's socket type and
/// identity, or why the connection cannot go on.
pub(crate) fn check_answer(
    local: SocketType,
    answer: Answer,
) -> Result<(SocketType, Bytes), HandshakeError> {
    match answer {
        Answer::Accept {
            socket_type,
            identity,
            ..
        } => {
            if local == SocketType::Peer && identity.is_empty() {
                // Peers are routed by identity; an anonymous one cannot be.
                Err(HandshakeError::Refused {
                    code: Reason::ProtocolError,
                    text: "a PEER socket must announce a non-empty identity".into(),
                })
            } else if local.is_compatible(socket_type) {
                Ok((socket_type, identity))
            } else {
                // The server should have refused; refuse on our side too.
                Err(HandshakeError::Refused {
                    code: Reason::IncompatibleSocket,
                    text: format!("a {local} socket cannot talk to a {socket_type} socket"),
                })
            }
        }
        Answer::Reject { code, text, .. } => Err(HandshakeError::Rejected { code, text }),
        _ => Err(HandshakeError::Refused {
            code: Reason::ProtocolError,
            text: "unknown handshake answer".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(t: SocketType) -> Hello {
        Hello::new(t, Bytes::from_static(b"me"), None)
    }

    #[test]
    fn compatible_pairs_pass() {
        assert!(check_hello(SocketType::Rep, &hello(SocketType::Req)).is_ok());
        assert!(check_hello(SocketType::Pub, &hello(SocketType::Sub)).is_ok());
    }

    #[test]
    fn req_to_pub_is_refused_with_a_clear_reason() {
        let (code, text) = check_hello(SocketType::Pub, &hello(SocketType::Req)).unwrap_err();
        assert_eq!(code, Reason::IncompatibleSocket);
        assert!(text.contains("REQ") && text.contains("PUB"), "{text}");
    }

    #[test]
    fn other_versions_are_refused() {
        let mut h = hello(SocketType::Req);
        h.version = 9;
        let (code, _) = check_hello(SocketType::Rep, &h).unwrap_err();
        assert_eq!(code, Reason::UnsupportedVersion);
    }

    #[test]
    fn client_refuses_an_incompatible_acceptance() {
        let answer = Answer::accept(SocketType::Pub, Bytes::new());
        let err = check_answer(SocketType::Req, answer).unwrap_err();
        assert!(matches!(
            err,
            HandshakeError::Refused {
                code: Reason::IncompatibleSocket,
                ..
            }
        ));
    }

    #[test]
    fn peers_must_announce_an_identity() {
        let anonymous = Hello::new(SocketType::Peer, Bytes::new(), None);
        let (code, text) = check_hello(SocketType::Peer, &anonymous).unwrap_err();
        assert_eq!(code, Reason::ProtocolError);
        assert!(text.contains("identity"), "{text}");
        assert!(check_hello(SocketType::Peer, &hello(SocketType::Peer)).is_ok());
        let answer = Answer::accept(SocketType::Peer, Bytes::new());
        assert!(check_answer(SocketType::Peer, answer).is_err());
    }

    #[test]
    fn rejection_carries_the_servers_reason() {
        let answer = Answer::reject(Reason::AuthRejected, "no");
        let err = check_answer(SocketType::Req, answer).unwrap_err();
        assert!(err.is_auth_rejected());
        assert!(err.to_string().contains("no"));
    }
}
