//! Proxies: requests go through `api.proxy` (a small HTTP proxy here, on a
//! loopback port: CONNECT tunnels for https, forwarding for http), and a
//! proxy that refuses connections is named in the error and in `ping`'s
//! advice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tc_ingest::api::{Client, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// A minimal HTTP proxy: `CONNECT host:port` opens a tunnel; a request in
/// absolute form (`GET http://host:port/path`) is forwarded in origin form.
/// It keeps the head of the first request of every connection.
struct TestProxy {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, seen.clone()));
            }
        });
        Self { addr, heads, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut client: TcpStream, heads: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    heads.lock().unwrap().push(head.clone());
    let line = head.lines().next().unwrap_or_default().to_string();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut upstream;
    if method == "CONNECT" {
        upstream = TcpStream::connect(target).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        upstream.write_all(&buf[end..]).await?;
    } else {
        let url = url::Url::parse(target).expect("absolute-form target");
        let origin = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        upstream = TcpStream::connect((
            url.host_str().unwrap(),
            url.port_or_known_default().unwrap(),
        ))
        .await?;
        let rest = head.split_once("\r\n").map_or("", |(_, r)| r);
        upstream
            .write_all(format!("{method} {origin} HTTP/1.1\r\n{rest}").as_bytes())
            .await?;
        upstream.write_all(&buf[end..]).await?;
    }
    // Later requests on a kept-alive connection pass as they are (a server
    // must accept the absolute form too).
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

#[tokio::test]
async fn https_goes_through_the_proxy_by_connect_with_its_credentials() {
    let (ca_pem, cert, key) = private_ca();
    let sim = https_sim(cert, key).await;
    let sim_addr = sim.addr;
    let proxy = TestProxy::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let app = TestApp::builder()
        .simulator(sim)
        .api_config(&format!(
            "ca_file = \"{}\"\nproxy = \"http://tc:s3cret@{}\"",
            ca.display(),
            proxy.addr
        ))
        .start()
        .await;

    let out = app.binary(&["ping"]).await;
    exited(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("through the proxy {} (api.proxy)", proxy.url())),
        "{stdout}"
    );
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].starts_with(&format!("CONNECT {sim_addr} HTTP/1.1")),
        "{heads:?}"
    );
    // base64("tc:s3cret")
    assert!(
        heads[0].contains("Basic dGM6czNjcmV0"),
        "proxy credentials sent: {heads:?}"
    );
    assert_eq!(app.sim.stats().by_class["success"], 1);
    assert!(!stdout.contains("s3cret"));
}

#[tokio::test]
async fn plain_http_is_forwarded_by_the_proxy_and_delivery_works_through_it() {
    let proxy = TestProxy::start().await;
    let app = TestApp::builder()
        .api_config(&format!("proxy = \"{}\"", proxy.url()))
        .start()
        .await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 3, 1)).await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.paused);
    assert_eq!(app.sim.indicators().len(), 3);
    let heads = proxy.heads();
    let base = app.sim.base_url();
    assert!(!heads.is_empty());
    assert!(
        heads
            .iter()
            .all(|h| h.starts_with("GET ") || h.starts_with("POST ")),
        "{heads:?}"
    );
    assert!(
        heads.iter().all(|h| h.contains(&format!(" {base}/v2/"))),
        "absolute-form requests to the simulator: {heads:?}"
    );
}

#[tokio::test]
async fn a_refused_proxy_is_named_in_the_error_and_in_pings_advice() {
    // A port nobody listens on: bound, then closed.
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let app = TestApp::builder()
        .api_config(&format!("proxy = \"http://{closed}\""))
        .start()
        .await;
    let named = format!("proxy http://{closed} (api.proxy)");

    let client: Client = app.client();
    match client.owners().await.unwrap_err() {
        Outcome::Transport { message } => {
            assert!(
                message.starts_with(&format!("connection failed (through the {named})")),
                "{message}"
            )
        }
        o => panic!("{o:?}"),
    }

    let out = app.binary(&["ping"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("through the {named}")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the request went through the {named}: check that it runs"
        )),
        "{stderr}"
    );
    assert_eq!(app.sim.stats().requests, 0, "nothing reached the server");

    // The same proxy from tcex's variables is named by its variable.
    app.edit_config(|text| text.replace(&format!("proxy = \"http://{closed}\""), ""));
    let out = app
        .command(&["ping"])
        .env("TC_PROXY_HOST", "127.0.0.1")
        .env("TC_PROXY_PORT", closed.port().to_string())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("proxy http://{closed} (TC_PROXY_HOST)")),
        "{stderr}"
    );
}
