//! Black-box harness: a cluster of real `auction-node run` processes on loopback, each with its
//! own data directory and log file, and a small JSON client. Nodes are killed (SIGKILL) on drop
//! or on demand. Node-to-node gRPC is mutual TLS as deployed: the cluster's certificates are made
//! with `auction-node certs` in the cluster's directory ([`Cluster::node_tls_dir`] adds one for
//! a node that joins later). [`S3Server`] is a real S3-compatible object store (`s3s-fs`) for
//! the nodes' auction images.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "test-cluster-admin-token";
pub const SHARDS: u32 = 4;
const READY_WAIT_MS_MAX: u64 = 90_000;
/// Retries of a request answered `503 NO_LEADER` before the test sees the 503.
const NO_LEADER_RETRIES_MAX: u32 = 5;

/// The `auctionctl` binary, built once per test binary. It belongs to another package
/// (`auction-ctl`, which depends on no part of the node), so cargo does not build it for this
/// package's tests: this runs `cargo build -p auction-ctl --bin auctionctl` into the target
/// directory and profile of `auction-node` (a no-op when it is up to date) and returns its path.
pub fn auctionctl_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let node = Path::new(env!("CARGO_BIN_EXE_auction-node"));
        let profile_dir = node.parent().expect("the binaries' directory");
        let target_dir = profile_dir.parent().expect("the target directory");
        let mut build = Command::new(env!("CARGO"));
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "auction-ctl",
                "--bin",
                "auctionctl",
            ])
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(
            status.success(),
            "cargo build -p auction-ctl failed: {status}"
        );
        profile_dir.join("auctionctl")
    })
}

/// `auction-node restore --from BACKUP` with the arguments `run` is about to get (the same
/// data directory, id, address, peers and shard count); panics with its output if it fails.
fn restore(backup: &Path, run: &Command) {
    let output = Command::new(env!("CARGO_BIN_EXE_auction-node"))
        .arg("restore")
        .arg("--from")
        .arg(backup)
        .args(run.get_args().skip(1))
        .env("RUST_LOG", "warn")
        .output()
        .expect("auction-node restore runs");
    assert!(
        output.status.success(),
        "auction-node restore failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `auction-node certs --out DIR --nodes NODES` (the CA is made once per `DIR`).
pub fn make_certs(dir: &Path, nodes: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_auction-node"))
        .arg("certs")
        .arg("--out")
        .arg(dir)
        .args(["--nodes", nodes])
        .output()
        .expect("auction-node certs runs");
    assert!(
        output.status.success(),
        "auction-node certs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub struct Node {
    pub id: u64,
    pub http: String,
    /// The node-to-node gRPC address, `127.0.0.1:PORT`.
    pub grpc: String,
    /// `None` once killed. Behind a lock so a cluster shared by tests can be stopped through a
    /// shared reference ([`Cluster::stop`]).
    child: Mutex<Option<Child>>,
    log: PathBuf,
    /// The arguments of `auction-node` it was started with (for [`Cluster::restart`]).
    args: Vec<String>,
    /// The environment it was started with beyond the test's (for [`Cluster::restart`]).
    env: Vec<(String, String)>,
    data_dir: PathBuf,
}

impl Node {
    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn kill(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// The certificate directory (the CA, `node-<id>/` per node), inside the cluster's
    /// directory.
    pub tls_dir: PathBuf,
    /// The nodes' data and logs; removed by [`Cluster::stop`].
    dir: Mutex<Option<TempDir>>,
}

/// Ports are taken below the kernel's ephemeral range (32768 and up by default), so outgoing
/// connections of the nodes themselves can never occupy a port a node is about to bind.
const PORT_FIRST: u16 = 20_000;
const PORT_LAST: u16 = 32_000;
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

pub fn free_port() -> u16 {
    let span = u32::from(PORT_LAST - PORT_FIRST);
    let start = std::process::id() % span * 7;
    for _ in 0..span {
        let offset = (start + NEXT_PORT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = PORT_FIRST + u16::try_from(offset).expect("in range");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {PORT_FIRST} and {PORT_LAST}");
}

impl Cluster {
    /// Starts `count` nodes (node 1 bootstraps) and waits until every one is ready.
    pub async fn start(count: u64) -> Cluster {
        Cluster::start_with(
            count,
            &["--bid-rate-per-minute", "6000", "--ip-rate-per-minute", "0"],
        )
        .await
    }

    /// Starts a cluster whose nodes get `extra` arguments (the production rate limits when
    /// `extra` is empty).
    pub async fn start_with(count: u64, extra: &[&str]) -> Cluster {
        Cluster::start_with_env(count, extra, &[]).await
    }

    /// [`Cluster::start_with`] with `env` set for every node process (also on restarts).
    pub async fn start_with_env(count: u64, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        for attempt in 1..=3 {
            let cluster = Cluster::spawn(count, extra, env);
            match cluster.wait_ready().await {
                Ok(()) => return cluster,
                Err(reason) if attempt < 3 => eprintln!("cluster start failed, again: {reason}"),
                Err(reason) => panic!("{reason}"),
            }
        }
        unreachable!("the last attempt panics")
    }

    /// Starts `count` nodes whose data directories are first seeded from `backup` with
    /// `auction-node restore` (no node bootstraps: the groups continue from the backup).
    pub async fn start_restored(count: u64, backup: &Path, extra: &[&str]) -> Cluster {
        for attempt in 1..=3 {
            let cluster = Cluster::spawn_from(count, extra, &[], Some(backup));
            match cluster.wait_ready().await {
                Ok(()) => return cluster,
                Err(reason) if attempt < 3 => eprintln!("cluster start failed, again: {reason}"),
                Err(reason) => panic!("{reason}"),
            }
        }
        unreachable!("the last attempt panics")
    }

    fn spawn(count: u64, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        Cluster::spawn_from(count, extra, env, None)
    }

    fn spawn_from(
        count: u64,
        extra: &[&str],
        env: &[(&str, &str)],
        backup: Option<&Path>,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls_dir = dir.path().join("tls");
        let ids: Vec<String> = (1..=count).map(|id| id.to_string()).collect();
        make_certs(&tls_dir, &ids.join(","));
        let ports: Vec<(u16, u16)> = (0..count).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for id in 1..=count {
            let (http_port, grpc_port) = ports[(id - 1) as usize];
            let peers: Vec<String> = (1..=count)
                .filter(|peer| *peer != id)
                .map(|peer| format!("{peer}=127.0.0.1:{}", ports[(peer - 1) as usize].1))
                .collect();
            let log = dir.path().join(format!("node-{id}.log"));
            let log_file = std::fs::File::create(&log).expect("log file");
            let data_dir = dir.path().join(format!("node-{id}"));
            let mut command = Command::new(env!("CARGO_BIN_EXE_auction-node"));
            command
                .arg("run")
                .args(["--id", &id.to_string()])
                .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
                .args(["--grpc-addr", &format!("127.0.0.1:{grpc_port}")])
                .args([
                    "--data-dir",
                    &dir.path().join(format!("node-{id}")).display().to_string(),
                ])
                .args(["--shards", &SHARDS.to_string()])
                .args(["--admin-token", ADMIN_TOKEN])
                .args(["--sse-heartbeat-ms", "300"])
                .args([
                    "--tls-dir",
                    &tls_dir.join(format!("node-{id}")).display().to_string(),
                ])
                .args(extra)
                .env("RUST_LOG", "warn")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log_file.try_clone().expect("log file"));
            // A one-node cluster has no peers (an empty `--peer` is no peer at all).
            if !peers.is_empty() {
                command.args(["--peer", &peers.join(",")]);
            }
            match backup {
                Some(backup) => restore(backup, &command),
                None if id == 1 => {
                    command.arg("--init");
                }
                None => {}
            }
            let args = command
                .get_args()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect();
            let child = command.spawn().expect("start auction-node");
            nodes.push(Node {
                id,
                http: format!("http://127.0.0.1:{http_port}"),
                grpc: format!("127.0.0.1:{grpc_port}"),
                child: Mutex::new(Some(child)),
                log,
                args,
                env: env
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect(),
                data_dir,
            });
        }
        Cluster {
            nodes,
            tls_dir,
            dir: Mutex::new(Some(dir)),
        }
    }

    /// The TLS directory of node `id` (for `--tls-dir`), its certificate made by the cluster's
    /// CA if it has none yet: a node that joins later.
    pub fn node_tls_dir(&self, id: u64) -> PathBuf {
        make_certs(&self.tls_dir, &id.to_string());
        self.tls_dir.join(format!("node-{id}"))
    }

    /// Waits until every node is ready; an error when one exits (a port taken meanwhile) or
    /// the time is up.
    async fn wait_ready(&self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_millis(READY_WAIT_MS_MAX);
        for node in self.nodes.iter().filter(|node| node.child().is_some()) {
            loop {
                let ready = client
                    .get(format!("{}/ready", node.http))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|response| response.status() == StatusCode::OK);
                if ready {
                    break;
                }
                let exited = node
                    .child()
                    .as_mut()
                    .is_some_and(|child| !matches!(child.try_wait(), Ok(None)));
                if exited || Instant::now() >= deadline {
                    return Err(format!(
                        "node {} not ready; log:\n{}",
                        node.id,
                        std::fs::read_to_string(&node.log).unwrap_or_default()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// Everything node `id` has logged so far.
    pub fn node_log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }

    pub fn url(&self, node: usize) -> &str {
        &self.nodes[node].http
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self, id: u64) {
        let node = self
            .nodes
            .iter()
            .find(|node| node.id == id)
            .expect("known node");
        node.kill();
    }

    /// The data directory of node `id`.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.node(id).data_dir.clone()
    }

    fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|node| node.id == id)
            .expect("known node")
    }

    /// Starts a killed node again with its first arguments and data, and waits until it is
    /// ready; its log continues in the same file.
    pub async fn restart(&mut self, id: u64) {
        let node = self.node(id);
        node.kill();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&node.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_auction-node"))
            .args(&node.args)
            .env("RUST_LOG", "warn")
            .envs(node.env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("restart auction-node");
        *node.child() = Some(child);
        if let Err(reason) = self.wait_ready().await {
            panic!("{reason}");
        }
    }

    /// Kills every node and removes the cluster's directory; for a cluster that is never
    /// dropped (a `static` shared by tests).
    pub fn stop(&self) {
        for node in &self.nodes {
            node.kill();
        }
        drop(
            self.dir
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long [`S3Server`] waits for `s3s-fs` to answer after starting it.
const S3_READY_WAIT_MS_MAX: u64 = 10_000;

/// A real S3-compatible object store: an `s3s-fs` process (installed by `cluster/bin/setup`,
/// found like the local cluster finds it) on a free loopback port, over a fresh temporary
/// directory, with random keys. [`S3Server::stop`] kills it and keeps its objects,
/// [`S3Server::start`] starts it again on the same port and directory (the store down during
/// an upload, and back); it is killed on drop. Nodes reach it with [`S3Server::node_args`]:
///
/// ```ignore
/// let s3 = S3Server::new();
/// let args = s3.node_args();
/// let args: Vec<&str> = args.iter().map(String::as_str).collect();
/// let cluster = Cluster::start_with(3, &args).await;
/// ```
pub struct S3Server {
    port: u16,
    pub access_key: String,
    pub secret_key: String,
    binary: PathBuf,
    /// `None` while stopped. Behind a lock so a store shared by tests can be stopped and
    /// started through a shared reference.
    child: Mutex<Option<Child>>,
    /// `data/` (the objects, one directory per bucket) and `s3s-fs.log`.
    dir: TempDir,
}

impl S3Server {
    /// Starts a store over a new directory and waits until it answers HTTP.
    pub fn new() -> S3Server {
        let binary = auction_node::local_cluster::s3s_fs_binary()
            .unwrap_or_else(|error| panic!("the image tests need s3s-fs: {error:#}"));
        let key = || uuid::Uuid::new_v4().simple().to_string();
        for attempt in 1..=3 {
            let server = S3Server {
                port: free_port(),
                access_key: key(),
                secret_key: format!("{}{}", key(), key()),
                binary: binary.clone(),
                child: Mutex::new(None),
                dir: tempfile::tempdir().expect("temp dir"),
            };
            std::fs::create_dir(server.root()).expect("the store's directory");
            // A port taken between `free_port` and the bind makes s3s-fs exit: another port.
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(reason) if attempt < 3 => eprintln!("s3s-fs start failed, again: {reason}"),
                Err(reason) => panic!("{reason}"),
            }
        }
        unreachable!("the last attempt panics")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The store's directory: one directory per bucket, an object a file in it.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The node arguments that point a node at this store (`--s3-endpoint`, `--s3-access-key`,
    /// `--s3-secret-key`), for [`Cluster::start_with`].
    pub fn node_args(&self) -> Vec<String> {
        vec![
            "--s3-endpoint".to_owned(),
            self.endpoint(),
            "--s3-access-key".to_owned(),
            self.access_key.clone(),
            "--s3-secret-key".to_owned(),
            self.secret_key.clone(),
        ]
    }

    /// SIGKILL; the objects stay. A no-op when stopped.
    pub fn stop(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped store again on the same port, directory and keys, and waits until it
    /// answers. A no-op when it runs.
    pub fn start(&self) {
        if self.child().is_some() {
            return;
        }
        if let Err(reason) = self.spawn_and_wait() {
            panic!("{reason}");
        }
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("s3s-fs.log")
    }

    /// Starts s3s-fs (its log appended to `s3s-fs.log`) and waits until it answers; an error
    /// with its log when it exits first or the time is up.
    fn spawn_and_wait(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("log file");
        let child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .args(["--access-key", &self.access_key])
            .args(["--secret-key", &self.secret_key])
            .arg(self.root())
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", self.binary.display()));
        *self.child() = Some(child);
        let deadline = Instant::now() + Duration::from_millis(S3_READY_WAIT_MS_MAX);
        loop {
            if answers_http(self.port) {
                return Ok(());
            }
            let exited = self
                .child()
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "s3s-fs on port {} not answering ({}); log:\n{}",
                    self.port,
                    exited.map_or("time is up".to_owned(), |status| status.to_string()),
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The status line of a plain unsigned `GET /` to `127.0.0.1:port` (`HTTP/1.1 403 Forbidden`
/// from an S3 server with authentication), or `None` when nothing answers.
pub fn http_status_line(port: u16) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let line = answer.lines().next()?;
    line.starts_with("HTTP/").then(|| line.to_owned())
}

fn answers_http(port: u16) -> bool {
    http_status_line(port).is_some()
}

/// One answer: status, headers, JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {:?}",
            self.body
        );
        self.body
    }

    /// Asserts an error answer of the API's shape (`api/API.md`, "Errors").
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["error"], code, "wrong code: {body}");
        assert!(
            body["message"].is_string(),
            "an error has a message: {body}"
        );
        body
    }
}

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }
}

impl Api {
    /// One request, retried like a well-behaved client while the answer is `503 NO_LEADER` or
    /// `503 UNAVAILABLE` (a group between leaders, e.g. while leadership is being balanced after
    /// start, or not yet serving writes),
    /// waiting `Retry-After` between attempts.
    pub async fn call(
        &self,
        method: Method,
        url: String,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut reply = self
            .call_once(method.clone(), url.clone(), token, body.clone(), headers)
            .await;
        for _ in 0..NO_LEADER_RETRIES_MAX {
            // NO_LEADER: a group between leaders; UNAVAILABLE: a group refusing writes before
            // proposing them (right after start, before its leader has heard a majority's clocks).
            let refused_before_proposing = matches!(
                reply.body["error"].as_str(),
                Some("NO_LEADER" | "UNAVAILABLE")
            );
            if reply.status.as_u16() != 503 || !refused_before_proposing {
                break;
            }
            let seconds: u64 = reply.headers["retry-after"]
                .to_str()
                .ok()
                .and_then(|text| text.parse().ok())
                .expect("Retry-After in seconds");
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            reply = self
                .call_once(method.clone(), url.clone(), token, body.clone(), headers)
                .await;
        }
        reply
    }

    /// One request, no retry.
    pub async fn call_once(
        &self,
        method: Method,
        url: String,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, url: String, token: Option<&str>) -> Reply {
        self.call(Method::GET, url, token, None, &[]).await
    }

    pub async fn post(&self, url: String, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, url, token, Some(body), &[]).await
    }

    pub async fn raw(
        &self,
        method: Method,
        url: String,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// Registers and logs in; returns (user id, token).
    pub async fn user(&self, base: &str, name: &str) -> (String, String) {
        let email = format!("{name}@example.com");
        let body = serde_json::json!({
            "email": email, "password": "correct horse battery", "displayName": name,
        });
        let user = self
            .post(format!("{base}/api/v1/auth/register"), None, body)
            .await
            .expect(201);
        let login = serde_json::json!({ "email": email, "password": "correct horse battery" });
        let session = self
            .post(format!("{base}/api/v1/auth/login"), None, login)
            .await
            .expect(200);
        (
            user["user"]["id"].as_str().expect("id").to_owned(),
            session["token"].as_str().expect("token").to_owned(),
        )
    }
}

/// How long [`SseStream::next`] waits for one event.
const SSE_EVENT_WAIT_MS_MAX: u64 = 15_000;

/// One server-sent event: its name, id and JSON data (heartbeat comments are skipped).
#[derive(Debug, Clone)]
pub struct SseMessage {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// An open SSE stream, read event by event.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    /// Opens `url` with an optional bearer token and `Last-Event-ID`; a refusal is returned
    /// as the JSON reply.
    pub async fn open(
        url: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<SseStream, Reply> {
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("stream request sent");
        if response.status() != StatusCode::OK {
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.expect("body");
            return Err(Reply {
                status,
                headers,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            });
        }
        Ok(SseStream {
            response,
            buffer: String::new(),
        })
    }

    /// The next event, or `None` if none arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<SseMessage> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(message) = parse_sse_block(&block) {
                    return Some(message);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .expect("stream read")
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event; panics if none arrives in time.
    pub async fn next(&mut self) -> SseMessage {
        let wait = Duration::from_millis(SSE_EVENT_WAIT_MS_MAX);
        self.next_within(wait)
            .await
            .unwrap_or_else(|| panic!("no event in time; buffered {:?}", self.buffer))
    }
}

/// One event block; `None` for a block of comments only (a heartbeat).
fn parse_sse_block(block: &str) -> Option<SseMessage> {
    let (mut event, mut id, mut data) = (None, None, String::new());
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    let event = event?;
    let data = serde_json::from_str(&data).expect("event data is JSON");
    Some(SseMessage { event, id, data })
}

/// Waits until `base` answers `/ready` with success, for at most `wait`; `exited` says why the
/// node cannot become ready any more (it stopped), so the test fails at once with the reason.
pub async fn wait_until_ready(
    base: &str,
    wait: Duration,
    mut exited: impl FnMut() -> Option<String>,
) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        let ready = client
            .get(format!("{base}/ready"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return;
        }
        if let Some(reason) = exited() {
            panic!("{base} will not be ready: {reason}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{base} is not ready within {wait:?}");
}
