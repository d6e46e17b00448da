//! `cluster-e2e`: the end-to-end test of a running docker cluster (see `auction_ctl::e2e`);
//! `cluster/bin/docker-e2e` builds and starts the cluster, runs this and tears it down.

use auction_ctl::e2e::{self, E2eArgs};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "cluster-e2e",
    about = "End-to-end test of a docker auction cluster"
)]
struct Cli {
    #[command(flatten)]
    args: E2eArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    e2e::run(Cli::parse().args).await
}
