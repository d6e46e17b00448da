//! `auction-node local-cluster`: a whole cluster on loopback with one command. It starts N
//! child `auction-node run` processes (node 1 bootstraps), waits until every node is ready,
//! prints where to send requests, and on Ctrl-C stops the nodes gracefully (SIGTERM, then a
//! bounded wait, then SIGKILL). Data stays in `--data-dir`, so running it again restarts the
//! same cluster from its RocksDB.
//!
//! Node-to-node TLS is set up here: the cluster CA and a certificate per node are made under
//! `DATA_DIR/tls` on the first run and reused afterwards (a run with more nodes adds theirs,
//! signed by the same CA); node `i` runs with `--tls-dir DATA_DIR/tls/node-i`.
//!
//! Auction images go to an S3-compatible object store started here too: one `s3s-fs` child
//! (installed by `cluster/bin/setup`, found with [`s3s_fs_binary`]) on `127.0.0.1:--s3-port`
//! with its objects under `DATA_DIR/s3`, started before the nodes and stopped after them. Its
//! access and secret keys are made at random on the first run and kept in `DATA_DIR/s3-keys`
//! (`NAME=value` lines a shell can source); every node gets the endpoint and the keys. Its
//! log (warnings and errors, which include every refused request) goes to
//! `DATA_DIR/s3s-fs.log`, not to the terminal.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use auction_raft::network::certs;
use clap::Args;

/// How long the launcher waits for every node to be ready.
const READY_WAIT_MS_MAX: u64 = 60_000;
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_WAIT_MS_MAX: u64 = 10_000;
/// How long the launcher waits for the object store to accept connections.
const S3_WAIT_MS_MAX: u64 = 10_000;
/// The object store's keys, in the data directory.
const S3_KEYS_FILE: &str = "s3-keys";
/// The object store's log, in the data directory.
const S3_LOG_FILE: &str = "s3s-fs.log";

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
    /// The object store for auction images (`s3s-fs`) listens on 127.0.0.1 on this port.
    #[arg(long, default_value_t = 9000)]
    pub s3_port: u16,
}

/// The object store's credentials, shared by the store and every node.
struct S3Keys {
    access: String,
    secret: String,
}

/// The `s3s-fs` binary: `AUCTION_S3S_FS` (exported by `cluster/bin/env.sh`), else `s3s-fs` on
/// `PATH`, else cargo's bin directory (`~/.cargo/bin`, where `cluster/bin/setup` installs it).
pub fn s3s_fs_binary() -> anyhow::Result<PathBuf> {
    const INSTALL: &str = "run `bash cluster/bin/setup` to install it";
    if let Some(path) = std::env::var_os("AUCTION_S3S_FS").filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "AUCTION_S3S_FS is {}, which does not exist: {INSTALL}",
                path.display()
            );
        }
        return Ok(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("s3s-fs"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let in_cargo_home = cargo_home.map(|home| home.join("bin").join("s3s-fs"));
    on_path
        .chain(in_cargo_home)
        .find(|path| path.is_file())
        .with_context(|| {
            format!("s3s-fs (the S3 server for auction images) is not installed: {INSTALL}")
        })
}

fn port(base: u16, id: u64) -> anyhow::Result<u16> {
    let offset = u16::try_from(id - 1).context("too many nodes")?;
    base.checked_add(offset).context("port out of range")
}

/// The cluster's certificate directory.
fn tls_dir(args: &LocalClusterArgs) -> PathBuf {
    args.data_dir.join("tls")
}

/// The object store's keys from `DATA_DIR/s3-keys`, made at random (and written, mode 0600)
/// on the first run.
fn s3_keys(args: &LocalClusterArgs) -> anyhow::Result<S3Keys> {
    let path = args.data_dir.join(S3_KEYS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let value = |name: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
                    .filter(|value| !value.is_empty())
                    .map(str::to_owned)
                    .with_context(|| format!("{} has no {name}", path.display()))
            };
            Ok(S3Keys {
                access: value("AUCTION_S3_ACCESS_KEY")?,
                secret: value("AUCTION_S3_SECRET_KEY")?,
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let keys = S3Keys {
                access: uuid::Uuid::new_v4().simple().to_string(),
                secret: format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
            };
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut file| {
                    write!(
                        file,
                        "AUCTION_S3_ACCESS_KEY={}\nAUCTION_S3_SECRET_KEY={}\n",
                        keys.access, keys.secret
                    )
                })
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(keys)
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Starts `s3s-fs` on `127.0.0.1:--s3-port` over `DATA_DIR/s3`. It runs in a process group of
/// its own, so a Ctrl-C at the terminal reaches the launcher only, which stops the store after
/// the nodes.
fn spawn_s3(args: &LocalClusterArgs, keys: &S3Keys) -> anyhow::Result<Child> {
    if TcpStream::connect(("127.0.0.1", args.s3_port)).is_ok() {
        bail!(
            "port {} (--s3-port) is taken by another process (an s3s-fs left by an earlier run?): \
             stop it or pick another port",
            args.s3_port
        );
    }
    let binary = s3s_fs_binary()?;
    let root = args.data_dir.join("s3");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let log_path = args.data_dir.join(S3_LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    Command::new(&binary)
        .args(["--host", "127.0.0.1"])
        .args(["--port", &args.s3_port.to_string()])
        .args(["--access-key", &keys.access])
        .args(["--secret-key", &keys.secret])
        .arg(&root)
        // It logs every refused request as an error, several lines each.
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// Waits until the object store accepts connections on its port; an error when it exits first
/// or the time is up.
async fn wait_s3(args: &LocalClusterArgs, child: &mut Child) -> anyhow::Result<()> {
    let port = args.s3_port;
    let log = args.data_dir.join(S3_LOG_FILE);
    let deadline = Instant::now() + Duration::from_millis(S3_WAIT_MS_MAX);
    loop {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "s3s-fs exited ({status}) before serving 127.0.0.1:{port}; its log is {}",
                log.display()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "s3s-fs does not accept connections on 127.0.0.1:{port} after {S3_WAIT_MS_MAX} ms; \
                 its log is {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the object store: SIGINT (it finishes the requests in flight), then a bounded wait,
/// then SIGKILL.
fn stop_s3(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_millis(STOP_WAIT_MS_MAX);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if matches!(child.try_wait(), Ok(None)) {
        eprintln!("s3s-fs did not stop in time; killing it");
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn spawn_node(args: &LocalClusterArgs, id: u64, s3_keys: &S3Keys) -> anyhow::Result<Child> {
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
        .args(["--ip-rate-per-minute", "600000"])
        .args([
            "--s3-endpoint",
            &format!("http://127.0.0.1:{}", args.s3_port),
        ])
        .args(["--s3-access-key", &s3_keys.access])
        .args(["--s3-secret-key", &s3_keys.secret]);
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
    let keys = s3_keys(&args).context("the object store's keys")?;
    let mut s3 = spawn_s3(&args, &keys)?;
    if let Err(error) = wait_s3(&args, &mut s3).await {
        stop_s3(&mut s3);
        return Err(error);
    }
    let mut children = Vec::new();
    for id in 1..=args.nodes {
        match spawn_node(&args, id, &keys) {
            Ok(child) => children.push((id, child)),
            Err(error) => {
                stop_all(&mut children);
                stop_s3(&mut s3);
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
        stop_s3(&mut s3);
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
        "  images (s3s-fs): http://127.0.0.1:{}  (keys in {}, log in {})",
        args.s3_port,
        args.data_dir.join(S3_KEYS_FILE).display(),
        args.data_dir.join(S3_LOG_FILE).display()
    );
    println!(
        "try: curl -s http://127.0.0.1:{}/api/v1/cluster/status",
        args.http_port
    );
    println!("press Ctrl-C to stop the cluster");
    tokio::signal::ctrl_c().await?;
    println!("stopping...");
    stop_all(&mut children);
    stop_s3(&mut s3);
    Ok(())
}
