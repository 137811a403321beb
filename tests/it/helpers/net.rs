//! HTTP and sockets: a free loopback port, an HTTP client, the
//! simulator's control endpoint, and the connections open to an address.

use std::net::SocketAddr;

use tc_ingest::sim::Simulator;

/// A loopback port nothing listens on (bound, then closed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP client (reqwest is built without a default crypto provider:
/// the daemon's is installed first).
pub fn http() -> reqwest::Client {
    tc_ingest::api::client::install_crypto_provider();
    reqwest::Client::new()
}

/// `GET url`: the status and body, `None` while nothing answers.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    let r = http().get(url).send().await.ok()?;
    Some((r.status().as_u16(), r.text().await.unwrap()))
}

/// Sets faults through the simulator's control endpoint
/// (`POST /_sim/faults`, JSON; fields not given are kept); the status.
pub async fn post_sim_faults(sim: &Simulator, faults: serde_json::Value) -> u16 {
    http()
        .post(format!("http://{}/_sim/faults", sim.addr))
        .json(&faults)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// How many TCP connections to `addr` (IPv4) are established on this
/// machine, as `/proc/net/tcp` lists them.
pub fn connections_to(addr: SocketAddr) -> usize {
    let SocketAddr::V4(v4) = addr else {
        panic!("{addr}: IPv4 only");
    };
    // Addresses as the kernel prints them: the IP's bytes as a
    // little-endian number, the port big-endian, in hex.
    let remote = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // rem_address, st (01: ESTABLISHED)
            f.len() > 3 && f[2] == remote && f[3] == "01"
        })
        .count()
}
