//! Endpoint strings parse into what they say, print back the same, and bad ones are
//! rejected with a message that quotes them and names the problem.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use msg_transport::{Endpoint, EndpointErrorKind, Host, PeerAddr, Scheme};

fn parse(s: &str) -> Endpoint {
    s.parse()
        .unwrap_or_else(|e| panic!("{s} should parse: {e}"))
}

fn fails(s: &str) -> (EndpointErrorKind, String) {
    let error = s.parse::<Endpoint>().expect_err(s);
    assert_eq!(error.input(), s);
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("invalid endpoint \"{s}\": ")),
        "message does not quote the input: {text}"
    );
    (error.kind().clone(), text)
}

#[test]
fn good_endpoints_round_trip() {
    for s in [
        "tcp://127.0.0.1:5555",
        "tcp://0.0.0.0:0",
        "tcp://localhost:80",
        "tcp://my-host.example.com:65535",
        "tcp://[::1]:5555",
        "tcp://[fe80::1:2]:1",
        "tls://example.com:443",
        "quic://127.0.0.1:0",
        "quic://[::]:4433",
        "ipc:///tmp/msg.sock",
        "ipc://relative/path.sock",
        "ipc://x",
        "inproc://workers",
        "inproc://with spaces and/slashes:too",
    ] {
        assert_eq!(parse(s).to_string(), s);
    }
}

#[test]
fn parts_are_what_the_string_says() {
    assert_eq!(
        parse("tcp://10.1.2.3:4444"),
        Endpoint::Tcp {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
            port: 4444
        }
    );
    assert_eq!(
        parse("quic://[::1]:7").socket_addr(),
        Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 7))
    );
    let tls = parse("tls://broker.internal:5556");
    assert_eq!(tls.scheme(), Scheme::Tls);
    assert_eq!(
        tls.host_port(),
        Some((&Host::Name("broker.internal".into()), 5556))
    );
    assert_eq!(tls.socket_addr(), None);
    assert_eq!(
        parse("ipc:///run/a.sock").path(),
        Some(Path::new("/run/a.sock"))
    );
    assert_eq!(
        parse("ipc://rel/a.sock").path(),
        Some(Path::new("rel/a.sock"))
    );
    assert_eq!(parse("inproc://x"), Endpoint::inproc("x"));
    assert_eq!(parse("TCP://h:1").scheme(), Scheme::Tcp);
}

#[test]
fn with_scheme_keeps_the_address() {
    let tcp = parse("tcp://h:9");
    assert_eq!(
        tcp.with_scheme(Scheme::Tls).unwrap().to_string(),
        "tls://h:9"
    );
    assert_eq!(tcp.with_scheme(Scheme::Ipc), None);
    assert_eq!(parse("inproc://a").with_scheme(Scheme::Tcp), None);
}

#[test]
fn missing_scheme() {
    for s in ["127.0.0.1:5555", "", "://host:1", "tcp:/host:1"] {
        let (kind, text) = fails(s);
        assert_eq!(kind, EndpointErrorKind::MissingScheme, "{s}");
        assert!(text.contains("missing scheme"), "{text}");
    }
}

#[test]
fn unknown_scheme_is_named() {
    let (kind, text) = fails("udp://127.0.0.1:9");
    assert_eq!(kind, EndpointErrorKind::UnknownScheme("udp".into()));
    assert!(text.contains("unknown scheme \"udp\""), "{text}");
    assert!(text.contains("tcp, ipc, quic, tls or inproc"), "{text}");
}

#[test]
fn missing_port() {
    for s in [
        "tcp://127.0.0.1",
        "tls://host",
        "quic://[::1]",
        "tcp://host:",
    ] {
        let (kind, text) = fails(s);
        assert_eq!(kind, EndpointErrorKind::MissingPort, "{s}");
        assert!(text.contains("missing port"), "{text}");
    }
}

#[test]
fn bad_port_is_quoted() {
    for (s, port) in [
        ("tcp://127.0.0.1:99999", "99999"),
        ("tcp://127.0.0.1:65536", "65536"),
        ("tcp://h:http", "http"),
        ("tcp://h:-1", "-1"),
        ("tcp://h:+80", "+80"),
        ("tcp://h:80/path", "80/path"),
    ] {
        let (kind, text) = fails(s);
        assert_eq!(kind, EndpointErrorKind::BadPort(port.into()), "{s}");
        assert!(text.contains(&format!("bad port \"{port}\"")), "{text}");
    }
}

#[test]
fn missing_host() {
    for s in ["tcp://:5555", "quic://"] {
        assert_eq!(fails(s).0, EndpointErrorKind::MissingHost, "{s}");
    }
}

#[test]
fn bad_host() {
    for s in [
        "tcp://999.1.1.1:1",
        "tcp://1.2.3:1",
        "tcp://a b:1",
        "tcp://h/x:1",
    ] {
        let (kind, text) = fails(s);
        assert!(
            matches!(kind, EndpointErrorKind::BadHost(_)),
            "{s}: {kind:?}"
        );
        assert!(text.contains("bad host"), "{text}");
    }
}

#[test]
fn bad_ipv6_brackets() {
    let cases = [
        ("tcp://[::1:5555", "missing closing bracket"),
        ("tcp://::1:5555", "must be written in brackets"),
        ("tcp://[::g]:1", "\"::g\" is not an IPv6 address"),
        ("tcp://[127.0.0.1]:1", "is not an IPv6 address"),
        ("tcp://[::1]x:1", "unexpected \"x:1\" after \"]\""),
        ("tcp://::1]:1", "brackets"),
    ];
    for (s, expected) in cases {
        let (kind, text) = fails(s);
        assert!(
            matches!(kind, EndpointErrorKind::BadIpv6(_)),
            "{s}: {kind:?}"
        );
        assert!(text.contains(expected), "{s}: {text}");
    }
}

#[test]
fn empty_path_and_name() {
    let (kind, text) = fails("ipc://");
    assert_eq!(kind, EndpointErrorKind::EmptyPath);
    assert!(text.contains("empty path"), "{text}");
    let (kind, text) = fails("inproc://");
    assert_eq!(kind, EndpointErrorKind::EmptyName);
    assert!(text.contains("empty name"), "{text}");
    assert_eq!(fails("ipc://a\0b").0, EndpointErrorKind::InvalidPath);
}

#[test]
fn peer_addresses_display_like_endpoints() {
    let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    assert_eq!(PeerAddr::Tcp(addr).to_string(), "tcp://127.0.0.1:4000");
    assert_eq!(PeerAddr::Tls(addr).to_string(), "tls://127.0.0.1:4000");
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    assert_eq!(PeerAddr::Quic(v6).to_string(), "quic://[::1]:9");
    let ipc = PeerAddr::Ipc {
        path: "/run/a.sock".into(),
        conn_id: 7,
    };
    assert_eq!(ipc.to_string(), "ipc:///run/a.sock#7");
    assert_eq!(ipc.conn_id(), Some(7));
    let inproc = PeerAddr::Inproc {
        name: "w".into(),
        conn_id: 8,
    };
    assert_eq!(inproc.to_string(), "inproc://w#8");
    assert_eq!(inproc.scheme(), Scheme::Inproc);
}

#[tokio::test]
async fn resolve_returns_addresses() {
    let ip = parse("tcp://127.0.0.1:80").resolve().await.unwrap();
    assert_eq!(ip, vec!["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
    let named = parse("tcp://localhost:80").resolve().await.unwrap();
    assert!(!named.is_empty());
    assert!(named.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
    let error = parse("ipc:///x").resolve().await.unwrap_err();
    assert!(error.to_string().contains("not supported"), "{error}");
    // .invalid never resolves (RFC 2606).
    let error = parse("tcp://no-such-host.invalid:1")
        .resolve()
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("cannot resolve host \"no-such-host.invalid\""),
        "{error}"
    );
}
