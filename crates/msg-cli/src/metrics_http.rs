//! `--metrics-addr`: the sockets' metrics in the Prometheus text format,
//! over plain HTTP, for as long as the command runs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The longest a scrape may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes of a request that are read.
const MAX_REQUEST: usize = 8 * 1024;

/// `ADDR` as `--metrics-addr` takes it: IP:PORT, or a port on loopback.
pub(crate) fn parse_addr(addr: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = addr.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    addr.parse()
        .with_context(|| format!("--metrics-addr {addr:?} is not IP:PORT or a port"))
}

/// Installs the Prometheus recorder and serves it at `addr`; the task ends
/// when aborted.
///
/// # Errors
///
/// A bad address, an address in use, or a recorder already installed.
pub(crate) async fn serve(addr: &str) -> anyhow::Result<JoinHandle<()>> {
    let addr = parse_addr(addr)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("a metrics recorder is already installed")?;
    eprintln!("msg: metrics on http://{}/metrics", listener.local_addr()?);
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                if let Err(error) = answer(stream, &handle).await {
                    tracing::debug!(%error, "metrics scrape failed");
                }
            });
        }
    }))
}

/// Answers one HTTP request: `GET /metrics` with the metrics, anything
/// else with 404.
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        std::io::Result::Ok(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read_head)
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    let (status, body) = if request.starts_with(b"GET /metrics ") {
        ("200 OK", handle.render())
    } else {
        ("404 Not Found", "not found; try /metrics\n".to_owned())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
