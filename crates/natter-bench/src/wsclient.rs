//! WebSocket client connections as the load generator opens them: small buffers (thousands
//! live in one process) and, for the connections scenario, a chosen loopback source address.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Socket = WebSocketStream<TcpStream>;

/// 4 KiB read buffers, as the servers under test use: the client's memory is not what is measured,
/// but 10,000 sockets at tungstenite's default 128 KiB would need over a gigabyte.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// Opens `url` (`ws://127.0.0.1:PORT/...`), from `source` when given.
pub async fn connect(url: &str, source: Option<IpAddr>) -> anyhow::Result<Socket> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad URL {url}"))?;
    let host = parsed.host_str().context("the URL has no host")?;
    let port = parsed.port_or_known_default().context("the URL has no port")?;
    let address: SocketAddr =
        format!("{host}:{port}").parse().with_context(|| format!("{host} is not an IP address"))?;
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0)).with_context(|| format!("cannot bind to {source}"))?;
    }
    let stream = socket.connect(address).await.with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let (socket, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config()))
        .await
        .with_context(|| format!("WebSocket handshake with {url} failed"))?;
    Ok(socket)
}
