//! Authentication: a Rep socket that only serves clients with the right
//! token. One client gets in, the other is told why it was refused. Then a
//! token table, which binds each identity to a token of its own.
//!
//! Run with `cargo run --example auth`.

use std::time::Duration;

use msg::prelude::*;
use msg::{AuthRejection, AuthRequest, TokenTable};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // ANCHOR: server
    let mut server_options = SocketOptions::new();
    server_options
        .authenticator(|req: AuthRequest| async move {
            println!(
                "server: {} (identity {:?}) wants in",
                req.addr,
                String::from_utf8_lossy(&req.identity)
            );
            match req.token.as_deref() {
                Some(b"open sesame") => Ok(()),
                _ => Err(AuthRejection::new("unknown token")),
            }
        })
        .auth_timeout(Duration::from_secs(2));
    let rep = RepSocket::with_options(server_options)?;
    let endpoint = rep.bind("tcp://127.0.0.1:0").await?;
    tokio::spawn(rep.serve(4, |payload, _| async move { payload }));
    // ANCHOR_END: server

    // ANCHOR: client
    let mut good = SocketOptions::new();
    good.identity("alice").auth_token("open sesame");
    let alice = ReqSocket::with_options(good)?;
    alice.connect(&endpoint.to_string())?;
    let reply = alice.request("hello").await?;
    println!("alice: got {:?}", String::from_utf8_lossy(&reply));
    // ANCHOR_END: client

    // ANCHOR: rejected
    let mut bad = SocketOptions::new();
    bad.identity("mallory").auth_token("guess");
    let mallory = ReqSocket::with_options(bad)?;
    let mut events = mallory.events();
    mallory.connect(&endpoint.to_string())?;
    while let Some(event) = events.next().await {
        if let SocketEvent::AuthRejected { reason, .. } = event {
            println!("mallory: rejected: {reason}");
            break;
        }
    }
    // ANCHOR_END: rejected

    // ANCHOR: token_table
    let mut tokens = TokenTable::new();
    tokens
        .insert("alice", "7f3a9c1e5b2d4f60")
        .insert("bob", "c81e728d9d4c2f63");
    let mut guarded = SocketOptions::new();
    guarded.authenticator(tokens);
    let rep = RepSocket::with_options(guarded)?;
    let endpoint = rep.bind("tcp://127.0.0.1:0").await?;
    tokio::spawn(rep.serve(4, |payload, _| async move { payload }));

    // Mallory knows bob's token but announces alice's identity: refused.
    let mut forged = SocketOptions::new();
    forged.identity("alice").auth_token("c81e728d9d4c2f63");
    let mallory = ReqSocket::with_options(forged)?;
    let mut events = mallory.events();
    mallory.connect(&endpoint.to_string())?;
    while let Some(event) = events.next().await {
        if let SocketEvent::AuthRejected { reason, .. } = event {
            println!("mallory as alice: rejected: {reason}");
            break;
        }
    }
    // ANCHOR_END: token_table
    Ok(())
}
