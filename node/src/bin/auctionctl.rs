//! `auctionctl`: the admin command line of the cluster, over the HTTP API of any node.
//!
//! - `auctionctl user grant-admin EMAIL` makes a user an admin, authenticated by the cluster
//!   admin token (`--admin-token` or `AUCTION_ADMIN_TOKEN`, the same value the nodes have):
//!   this is how the first admin is made.
//! - `auctionctl status` prints the node's view of every Raft group.
//!
//! Not done yet: membership changes, the load generator (`auctionctl bench`).

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

/// How long one request may take.
const REQUEST_TIMEOUT_MS_MAX: u64 = 30_000;

#[derive(Parser)]
#[command(name = "auctionctl", version, about = "Administer the auction cluster")]
struct Cli {
    /// Base URL of any node's HTTP API.
    #[arg(
        long,
        env = "AUCTION_NODE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    node: String,
    /// The cluster admin token the nodes were started with.
    #[arg(long, env = "AUCTION_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Every Raft group as this node sees it.
    Status,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Give a user the admin role.
    GrantAdmin { email: String },
    /// Take the admin role away.
    RevokeAdmin { email: String },
}

async fn set_role(cli: &Cli, email: &str, role: &str) -> anyhow::Result<()> {
    let token = cli
        .admin_token
        .as_deref()
        .context("the cluster admin token is needed: --admin-token or AUCTION_ADMIN_TOKEN")?;
    let url = format!(
        "{}/api/v1/admin/users/{email}/role",
        cli.node.trim_end_matches('/')
    );
    let response = client()?
        .put(url)
        .header("x-admin-token", token)
        .json(&serde_json::json!({ "role": role }))
        .send()
        .await
        .context("the node did not answer")?;
    print_answer(response).await
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS_MAX))
        .build()?)
}

async fn print_answer(response: reqwest::Response) -> anyhow::Result<()> {
    let status = response.status();
    let body: serde_json::Value = response.json().await.context("the answer is not JSON")?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    if !status.is_success() {
        bail!("refused with {status}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::User {
            command: UserCommand::GrantAdmin { email },
        } => set_role(&cli, email, "admin").await,
        Command::User {
            command: UserCommand::RevokeAdmin { email },
        } => set_role(&cli, email, "user").await,
        Command::Status => {
            let url = format!("{}/api/v1/cluster/status", cli.node.trim_end_matches('/'));
            print_answer(
                client()?
                    .get(url)
                    .send()
                    .await
                    .context("the node did not answer")?,
            )
            .await
        }
    }
}
