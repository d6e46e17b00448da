//! `auctionctl`: the admin command line of the cluster, over the HTTP API of any node (see
//! `auction_ctl::admin`).
//!
//! - `user grant-admin|revoke-admin EMAIL`: roles; this is how the first admin is made.
//! - `status`: every member's view of every Raft group, a table per group.
//! - `node add ID ADDR` / `node remove ID`: membership of every group.
//! - `leader transfer --group G --to N`, `snapshot --group G`.
//! - `backup FILE`: every group's state, each at a recorded log position, into one
//!   self-checking file while the cluster serves; `backup verify FILE` checks one offline.
//!
//! Every command needs the cluster admin token (`--admin-token` or `AUCTION_ADMIN_TOKEN`, the
//! value the nodes were started with); `--json` prints machine-readable answers.

use std::path::PathBuf;
use std::time::Duration;

use auction_ctl::admin::{self, backup, membership, status, Ctl};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "auctionctl", version, about = "Administer the auction cluster")]
struct Cli {
    /// Base URL of any node's HTTP API.
    #[arg(
        long,
        global = true,
        env = "AUCTION_NODE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    node: String,
    /// The cluster admin token the nodes were started with.
    #[arg(
        long,
        global = true,
        env = "AUCTION_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
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
    /// Every member's view of every Raft group.
    Status,
    /// Cluster membership (every group at once).
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Group leadership.
    Leader {
        #[command(subcommand)]
        command: LeaderCommand,
    },
    /// Make every member of a group build a snapshot now.
    Snapshot {
        #[arg(long)]
        group: u64,
    },
    /// Back up every group into FILE while the cluster serves (`backup verify FILE` checks one).
    Backup(BackupArgs),
    /// Load generator: users, auctions, then concurrent bids and reads; latency per operation.
    Bench(auction_ctl::bench::BenchArgs),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// The file to write (refused if it exists; written as FILE.partial until complete).
    #[arg(required = true)]
    file: Option<PathBuf>,
    /// Give up on a group whose stream has not ended after this many seconds.
    #[arg(long, default_value_t = 3_600)]
    group_timeout_secs: u64,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Check a backup file offline: header, every group's records and digests, trailer.
    Verify { file: PathBuf },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Give a user the admin role.
    GrantAdmin { email: String },
    /// Take the admin role away.
    RevokeAdmin { email: String },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Add a running node: a learner of every group until it has caught up, then a voter.
    Add {
        /// The new node's id (its `--id`).
        id: u64,
        /// Its node-to-node gRPC address as the other nodes reach it (`HOST:PORT`).
        addr: String,
        /// Give up waiting for the catch-up after this many seconds (it stays a learner).
        #[arg(long, default_value_t = 600)]
        wait_secs: u64,
    },
    /// Remove a node from every group.
    Remove { id: u64 },
}

#[derive(Subcommand)]
enum LeaderCommand {
    /// Hand a group's leadership to another voter and wait until it leads.
    Transfer {
        #[arg(long)]
        group: u64,
        #[arg(long)]
        to: u64,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 15)]
        wait_secs: u64,
    },
}

async fn run_backup(ctl: &Ctl, args: &BackupArgs) -> anyhow::Result<()> {
    match (&args.command, &args.file) {
        (Some(BackupCommand::Verify { file }), _) => backup::verify(ctl, file),
        (None, Some(file)) => {
            let group_timeout = Duration::from_secs(args.group_timeout_secs);
            backup::backup(ctl, file, group_timeout).await
        }
        (None, None) => anyhow::bail!("name the backup file: auctionctl backup FILE"),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes on one line, without a backtrace: this is an operator's tool.
            eprintln!("auctionctl: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctl = Ctl::new(&cli.node, cli.admin_token.clone(), cli.json)?;
    match &cli.command {
        Command::User { command } => match command {
            UserCommand::GrantAdmin { email } => admin::set_role(&ctl, email, "admin").await,
            UserCommand::RevokeAdmin { email } => admin::set_role(&ctl, email, "user").await,
        },
        Command::Status => status::run(&ctl).await,
        Command::Node { command } => match command {
            NodeCommand::Add {
                id,
                addr,
                wait_secs,
            } => membership::add(&ctl, *id, addr, Duration::from_secs(*wait_secs)).await,
            NodeCommand::Remove { id } => membership::remove(&ctl, *id).await,
        },
        Command::Leader {
            command:
                LeaderCommand::Transfer {
                    group,
                    to,
                    wait_secs,
                },
        } => membership::transfer(&ctl, *group, *to, Duration::from_secs(*wait_secs)).await,
        Command::Snapshot { group } => membership::snapshot(&ctl, *group).await,
        Command::Backup(args) => run_backup(&ctl, args).await,
        Command::Bench(args) => auction_ctl::bench::run(args).await,
    }
}
