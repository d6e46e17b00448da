//! `auction-node run …` runs one cluster node; `auction-node local-cluster` runs a 3-node
//! cluster on loopback; `auction-node certs` makes the node-to-node TLS certificates;
//! `auction-node restore --from FILE …` seeds a new node from a backup. Logs go
//! to stderr (`RUST_LOG` filters them; JSON lines unless stderr is a terminal, see
//! `auction_node::logging`).

use anyhow::Context;
use auction_node::certs::{self, CertsArgs};
use auction_node::config::NodeArgs;
use auction_node::local_cluster::{self, LocalClusterArgs};
use auction_node::logging::{self, LogFormat};
use auction_node::runtime::RunningNode;
use clap::{Parser, Subcommand};

/// Longest a node that refuses to serve waits for its groups to stop before it exits.
const REFUSAL_STOP_WAIT_MS_MAX: u64 = 10_000;

#[derive(Parser)]
#[command(
    name = "auction-node",
    version,
    about = "A node of the Raft-replicated auction cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `json`, `text`, or `auto` (text on a terminal, JSON otherwise).
    #[arg(
        long,
        global = true,
        env = "AUCTION_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: LogFormat,
}

// Parsed once at start and matched at once: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Run(NodeArgs),
    /// Run a cluster of nodes on loopback (child processes) until Ctrl-C.
    LocalCluster(LocalClusterArgs),
    /// Make the cluster CA (once) and node certificates for node-to-node mutual TLS.
    Certs(CertsArgs),
    /// Seed a new node's empty data directory from a backup (`auctionctl backup FILE`); run it
    /// on every node of the new cluster, then start each without --init.
    Restore(auction_node::restore::RestoreArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    auction_node::allocator::configure();
    let cli = Cli::parse();
    let node = match &cli.command {
        Command::Run(args) => Some(args.id),
        _ => None,
    };
    let logging = logging::init(cli.log_format, node)?;
    let result = match cli.command {
        Command::Run(args) => run(args).await,
        Command::LocalCluster(args) => local_cluster::run(args).await,
        Command::Certs(args) => certs::run(&args),
        Command::Restore(args) => auction_node::restore::run_and_report(&args).await,
    };
    logging.shutdown().await;
    result
}

async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let mut node = RunningNode::start(&args)
        .await
        .with_context(|| format!("starting node {}", args.id))?;
    tracing::info!(id = args.id, http = %node.http_addr, grpc = %node.grpc_addr, "node started");
    let refusal = tokio::select! {
        () = shutdown_signal() => None,
        refusal = node.refused() => Some(refusal),
    };
    if let Some(refusal) = refusal {
        return refuse(node, args.id, refusal).await;
    }
    tracing::info!("stopping");
    node.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Stops a node that must not serve (bounded: a node refusing to serve must not linger) and
/// exits with the reason.
async fn refuse(node: RunningNode, id: u64, refusal: anyhow::Error) -> anyhow::Result<()> {
    tracing::error!(%refusal, "refusing to serve");
    let stop_wait = std::time::Duration::from_millis(REFUSAL_STOP_WAIT_MS_MAX);
    if tokio::time::timeout(stop_wait, node.stop()).await.is_err() {
        // The groups did not stop in time: the process ends anyway, as a kill would end it.
        eprintln!("Error: node {id} refuses to serve: {refusal:#}");
        std::process::exit(1);
    }
    Err(refusal.context(format!("node {id} refuses to serve")))
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
