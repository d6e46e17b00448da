//! `auction-node local-cluster`: a whole cluster on loopback with one command. It starts N
//! child `auction-node run` processes (node 1 bootstraps), waits until every node is ready,
//! prints where to send requests, and on Ctrl-C stops the nodes gracefully (SIGTERM, then a
//! bounded wait, then SIGKILL). Data stays in `--data-dir`, so running it again restarts the
//! same cluster from its RocksDB.
//!
//! Node-to-node TLS is set up here: the cluster CA and a certificate per node are made under
//! `DATA_DIR/tls` on the first run and reused afterwards (a run with more nodes adds theirs,
//! signed by the same CA); node `i` runs with `--tls-dir DATA_DIR/tls/node-i`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use auction_raft::network::certs;
use clap::Args;

/// How long the launcher waits for every node to be ready.
const READY_WAIT_MS_MAX: u64 = 60_000;
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_WAIT_MS_MAX: u64 = 10_000;

#[derive(Debug, Clone, Args)]
pub struct LocalClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Parent directory of the nodes' data directories.
    #[arg(long, default_value = "./data/local-cluster")]
    pub data_dir: PathBuf,
    /// Node i serves HTTP on this port + i - 1.
    #[arg(long, default_value_t = 8081)]
    pub http_port: u16,
    /// Node i serves node-to-node gRPC on this port + i - 1.
    #[arg(long, default_value_t = 7001)]
    pub grpc_port: u16,
    /// Auction shards.
    #[arg(long, default_value_t = 8)]
    pub shards: u32,
    /// Each node's `--bid-rate-per-minute`: raised above the production default, since a dev
    /// cluster is driven by scripts and the load generator; 0 turns the per-user limit off.
    #[arg(long, default_value_t = 6_000)]
    pub bid_rate_per_minute: u32,
}

fn port(base: u16, id: u64) -> anyhow::Result<u16> {
    let offset = u16::try_from(id - 1).context("too many nodes")?;
    base.checked_add(offset).context("port out of range")
}

/// The cluster's certificate directory.
fn tls_dir(args: &LocalClusterArgs) -> PathBuf {
    args.data_dir.join("tls")
}

fn spawn_node(args: &LocalClusterArgs, id: u64) -> anyhow::Result<Child> {
    let peers: Vec<String> = (1..=args.nodes)
        .filter(|peer| *peer != id)
        .map(|peer| Ok(format!("{peer}=127.0.0.1:{}", port(args.grpc_port, peer)?)))
        .collect::<anyhow::Result<_>>()?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("run")
        .args(["--id", &id.to_string()])
        .args([
            "--http-addr",
            &format!("127.0.0.1:{}", port(args.http_port, id)?),
        ])
        .args([
            "--grpc-addr",
            &format!("127.0.0.1:{}", port(args.grpc_port, id)?),
        ])
        .args([
            "--data-dir",
            &args
                .data_dir
                .join(format!("node-{id}"))
                .display()
                .to_string(),
        ])
        .args(["--shards", &args.shards.to_string()])
        .args([
            "--tls-dir",
            &certs::node_dir(&tls_dir(args), id).display().to_string(),
        ])
        // A dev cluster is driven by scripts and the load generator: raise the production
        // rate limits explicitly.
        .args([
            "--bid-rate-per-minute",
            &args.bid_rate_per_minute.to_string(),
        ])
        .args(["--ip-rate-per-minute", "600000"]);
    if !peers.is_empty() {
        command.args(["--peer", &peers.join(",")]);
    }
    if id == 1 {
        command.arg("--init");
    }
    command
        .spawn()
        .with_context(|| format!("starting node {id}"))
}

/// `GET /ready` with a plain HTTP/1.0 request: true on a 200.
fn is_ready(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /ready HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

fn stop_all(children: &mut [(u64, Child)]) {
    for (_, child) in children.iter() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_millis(STOP_WAIT_MS_MAX);
    for (id, child) in children.iter_mut() {
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(child.try_wait(), Ok(None)) {
            eprintln!("node {id} did not stop in time; killing it");
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

pub async fn run(args: LocalClusterArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be between 1 and 9");
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let nodes: Vec<(u64, Vec<String>)> = (1..=args.nodes).map(|id| (id, Vec::new())).collect();
    certs::ensure_cluster(&tls_dir(&args), &nodes).context("making the cluster's certificates")?;
    let mut children = Vec::new();
    for id in 1..=args.nodes {
        match spawn_node(&args, id) {
            Ok(child) => children.push((id, child)),
            Err(error) => {
                stop_all(&mut children);
                return Err(error);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_millis(READY_WAIT_MS_MAX);
    let ready = loop {
        let ports: Vec<u16> = (1..=args.nodes)
            .filter_map(|id| port(args.http_port, id).ok())
            .collect();
        if ports.iter().all(|port| is_ready(*port)) {
            break true;
        }
        if Instant::now() >= deadline
            || children
                .iter_mut()
                .any(|(_, child)| matches!(child.try_wait(), Ok(Some(_))))
        {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if !ready {
        stop_all(&mut children);
        bail!("the cluster did not become ready within {READY_WAIT_MS_MAX} ms (see the nodes' logs above)");
    }
    println!(
        "\nlocal cluster of {} nodes is ready (data in {}):",
        args.nodes,
        args.data_dir.display()
    );
    for id in 1..=args.nodes {
        println!(
            "  node {id}: http://127.0.0.1:{}  (grpc 127.0.0.1:{})",
            port(args.http_port, id)?,
            port(args.grpc_port, id)?
        );
    }
    println!(
        "try: curl -s http://127.0.0.1:{}/api/v1/cluster/status",
        args.http_port
    );
    println!("press Ctrl-C to stop the cluster");
    tokio::signal::ctrl_c().await?;
    println!("stopping...");
    stop_all(&mut children);
    Ok(())
}
