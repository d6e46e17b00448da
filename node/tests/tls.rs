//! Black-box test of node-to-node mutual TLS on a real 3-node cluster (certificates made by
//! `auction-node certs` in the harness): a gRPC client without the cluster's credentials cannot
//! vote, append entries, install a snapshot, forward a write, ask for a read barrier, take a
//! rate-limit budget or call an admin RPC on any node, whether it speaks plaintext, TLS without
//! a client certificate, or TLS with a certificate of another CA. Every call is refused at the
//! handshake (or UNAUTHENTICATED), and the cluster's state is unchanged: no term moved to the
//! attacker's, no membership changed.
//! A client holding a certificate of the cluster CA reaches the same services (the control that
//! shows the refusals come from authentication), and a bid through HTTP succeeds.

mod common;

use std::path::Path;
use std::time::Duration;

use auction_raft::network::probe::{self, GroupMembership, Intruder, Rpc};
use common::{Api, Cluster, SHARDS};
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

/// The attacker's term: far above any term a test cluster reaches by itself.
const ATTACK_TERM: u64 = 1_000_000;
/// A node id that is no member.
const ATTACKER_ID: u64 = 99;
/// Bound on one attempted call, so a hang fails the test instead of stalling it.
const CALL_WAIT_MS_MAX: u64 = 10_000;

/// How an attacking client connects.
#[derive(Debug, Clone, Copy)]
enum Attacker {
    /// h2c, no TLS at all.
    Plaintext,
    /// TLS, trusting the cluster CA (as if it skipped verification), no client certificate.
    NoClientCertificate,
    /// TLS with a certificate and key of another CA, same node name.
    ForeignCertificate,
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A lazily connected channel to `addr`: TLS trusting `ca_dir/ca.pem` when `ca_dir` is given,
/// presenting `identity_dir`'s certificate when that is given.
fn channel(addr: &str, ca_dir: Option<&Path>, identity_dir: Option<&Path>) -> Channel {
    let Some(ca_dir) = ca_dir else {
        return Endpoint::from_shared(format!("http://{addr}"))
            .expect("address")
            .connect_lazy();
    };
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&ca_dir.join("ca.pem"))));
    if let Some(dir) = identity_dir {
        tls = tls.identity(Identity::from_pem(
            read(&dir.join("node.pem")),
            read(&dir.join("node-key.pem")),
        ));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("address")
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls)
        .expect("TLS config")
        .connect_lazy()
}

fn attacker_channel(cluster: &Cluster, foreign: &Path, addr: &str, attacker: Attacker) -> Channel {
    let cluster_ca = cluster.tls_dir.join("node-1");
    match attacker {
        Attacker::Plaintext => channel(addr, None, None),
        Attacker::NoClientCertificate => channel(addr, Some(&cluster_ca), None),
        Attacker::ForeignCertificate => {
            channel(addr, Some(&cluster_ca), Some(&foreign.join("node-1")))
        }
    }
}

/// Asserts that a call was refused by authentication: UNAUTHENTICATED, or a failure of the
/// connection itself (the handshake failed; tonic then reports a `transport::Error` as the
/// status's source, with whatever code the broken connection maps to: UNAVAILABLE, UNKNOWN, or
/// INTERNAL when a plaintext client reads the server's TLS alert as an HTTP/2 frame). A status
/// a service sent comes from the server's trailers and has no such source.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    attacker: Attacker,
    result: Result<T, tonic::Status>,
) {
    match result {
        Ok(reply) => panic!("{what} by {attacker:?} was answered: {reply:?}"),
        Err(status) => {
            let from_transport = std::error::Error::source(&status)
                .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some());
            assert!(
                status.code() == Code::Unauthenticated || from_transport,
                "{what} by {attacker:?} must fail at the handshake, got {status:?}"
            );
            eprintln!("{what} by {attacker:?}: refused ({:?})", status.code());
        }
    }
}

async fn bounded<T>(
    future: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(Duration::from_millis(CALL_WAIT_MS_MAX), future)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in time")))
}

fn intruder() -> Intruder {
    Intruder {
        term: ATTACK_TERM,
        node_id: ATTACKER_ID,
        groups: (0..=SHARDS).collect(),
    }
}

/// Every attack on one node through one kind of client.
async fn attack(channel: Channel, attacker: Attacker) {
    let intruder = intruder();
    for rpc in Rpc::ALL {
        let what = format!("{rpc:?}");
        assert_refused(
            &what,
            attacker,
            bounded(probe::send(channel.clone(), rpc, &intruder)).await,
        );
    }
}

/// Membership and term of every group on node `addr`, through a client with a certificate of
/// the cluster CA (node 1's).
async fn membership(cluster: &Cluster, addr: &str) -> Vec<GroupMembership> {
    let member = cluster.tls_dir.join("node-1");
    let groups: Vec<u32> = (0..=SHARDS).collect();
    bounded(probe::membership(
        channel(addr, Some(&member), Some(&member)),
        &groups,
    ))
    .await
    .expect("a client with a certificate of the cluster CA is served")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_of_the_cluster_ca_speak_to_nodes() {
    let cluster = Cluster::start(3).await;
    let foreign = tempfile::tempdir().expect("temp dir");
    common::make_certs(foreign.path(), "1");

    let mut before = Vec::new();
    for node in &cluster.nodes {
        before.push(membership(&cluster, &node.grpc).await);
    }
    assert!(
        before[0].iter().all(|group| group.voters == vec![1, 2, 3]),
        "three voters in every group: {:?}",
        before[0]
    );

    // The control: with a member's certificate the same garbage reaches the Raft service,
    // which refuses it for its content, not for its sender.
    let member = cluster.tls_dir.join("node-1");
    let answered = bounded(probe::send_undecodable_vote(channel(
        &cluster.nodes[1].grpc,
        Some(&member),
        Some(&member),
    )))
    .await;
    assert_eq!(
        answered.as_ref().map_err(tonic::Status::code).err(),
        Some(Code::InvalidArgument),
        "a member's undecodable vote reaches the service: {answered:?}"
    );

    for node in &cluster.nodes {
        for attacker in [
            Attacker::Plaintext,
            Attacker::NoClientCertificate,
            Attacker::ForeignCertificate,
        ] {
            attack(
                attacker_channel(&cluster, foreign.path(), &node.grpc, attacker),
                attacker,
            )
            .await;
        }
    }

    for (node, membership_before) in cluster.nodes.iter().zip(&before) {
        let after = membership(&cluster, &node.grpc).await;
        for group in &after {
            assert!(
                group.term < ATTACK_TERM,
                "node {} group {} took the attacker's term: {group:?}",
                node.id,
                group.group
            );
            assert!(
                !group.learners.contains(&ATTACKER_ID),
                "the attacker became a learner"
            );
        }
        let shape = |groups: &[GroupMembership]| -> Vec<(u32, Vec<u64>, Vec<u64>)> {
            groups
                .iter()
                .map(|group| (group.group, group.voters.clone(), group.learners.clone()))
                .collect()
        };
        assert_eq!(
            shape(&after),
            shape(membership_before),
            "node {} membership",
            node.id
        );
    }

    // The cluster itself works over its mutual TLS: a bid through HTTP, forwarded between
    // nodes as needed.
    let api = Api::default();
    let (_, seller) = api.user(cluster.url(0), "tls-seller").await;
    let (_, bidder) = api.user(cluster.url(1), "tls-bidder").await;
    let created = api
        .post(
            format!("{}/api/v1/auctions", cluster.url(0)),
            Some(&seller),
            json!({ "title": "Mutual lot", "startingPrice": "10.00", "durationSeconds": 3600 }),
        )
        .await
        .expect(201);
    let id = created["auction"]["id"].as_str().expect("auction id");
    let bid = api
        .post(
            format!("{}/api/v1/auctions/{id}/bids", cluster.url(2)),
            Some(&bidder),
            json!({ "amount": "12.00" }),
        )
        .await
        .expect(201);
    assert_eq!(
        (bid["status"].as_str(), bid["currentPrice"].as_str()),
        (Some("winning"), Some("12.00")),
        "{bid}"
    );
}
