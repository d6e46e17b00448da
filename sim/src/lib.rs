//! # auction-sim
//!
//! Deterministic simulation of whole auction clusters on [turmoil]: the real `auction-raft`
//! host (openraft groups, the tonic transport, request routing and forwarding to the leader,
//! read index) and the real `auction-statemachine` rules, on a simulated network, clock and
//! disk, with faults. A run is a function of its [`SimConfig`] (above all its seed), so a
//! failing seed reproduces the failure.
//!
//! A run ([`run::run`]): 3 or 5 nodes ([`node`]), each the real `RaftHost` on the in-memory
//! log whose unsynced writes a crash loses ([`storage`]) and the real HTTP API router
//! (`auction-api`) on turmoil's TCP ([`http`]); clients ([`client`]) that bid, proxy bid, buy
//! now and read a few hot, short auctions (seconds, with anti-sniping, listed through the run
//! by a seller, a quarter of the operations aimed at their last seconds) through any node,
//! half of their operations through the HTTP
//! API as registered users with sessions ([`api_client`]), the rest through a small framed
//! protocol that calls the host directly, with idempotency keys and retries, recording a Jepsen
//! [`History`](auction_jepsen::History); a nemesis ([`nemesis`]) that partitions, crashes and
//! restarts, holds and releases messages, spikes latency, demotes, removes and re-adds voters,
//! transfers leadership ([`admin`]) and sets one node's clock off or drifting
//! ([`net::NodeClock`]), on a schedule drawn from the seed in which two faults
//! may overlap ([`fault_state`] keeps their healing apart). Throughout, the driver samples Raft
//! invariants on every node ([`invariants`]). At the end the cluster is healed, every node is
//! made a voter again, the last auctions are let close, the cluster is allowed to become quiet,
//! a probe writes and reads through every node ([`client::run_probe`]), the API writes
//! are resolved against what the shards applied ([`api_history`]), and the `auction-jepsen`
//! checks judge the run: linearizability per auction against the state machine as the model,
//! no acknowledged bid lost, no command applied twice, every replica of a group with the same
//! state digest, the invariants, endings and anti-sniping, effective times within real time
//! widened by the skew bound, closes in time after healing; plus the simulator's own: every acknowledged API write took
//! effect as answered, and every bid a history read showed is in the final history.
//!
//! Determinism: every random choice of the harness comes from [`rng::SimRng`] streams of the
//! seed; turmoil's network is seeded with it; openraft's randomness is seeded per group from it
//! (`HostConfig::rng_seed`); a node's clock, and its API's, is simulated time from a fixed
//! epoch plus the seeded clock faults ([`net::NodeClock`]); ids are derived from the seed, never from the OS, including the
//! ids, session tokens and password salts the API mints (`auction_api::auth::Entropy::Seeded`
//! in [`node::api_config`]); the API's rate limiter, which reads the wall clock, is off; argon2
//! runs on the blocking pool, which stops simulated time until it is done; the node and client
//! software runs on turmoil's single-threaded per-host runtimes; the final state is read in key
//! order. What is *not* closed:
//! tokio's own RNG (its watch channels pick one of eight wait lists at random, which decides
//! the order in which openraft's tasks wake) is seeded by turmoil only in a build with
//! `--cfg tokio_unstable`, so the crate refuses to build without it. tokio's task ids come
//! from a process-wide counter, and a crash drops a node's tasks in an order that depends on
//! them, so every run first aligns the counter ([`task_ids`]): two runs of one seed in one
//! process, like two processes, give one trace hash (tested). What may still leak: wall time
//! inside h2 (it forgets locally reset streams after one second of `std::time::Instant`
//! time) and hyper's `date` header.
//!
//! Not done yet: message loss, duplication and reordering on node links; client-to-node
//! partitions; slow disks beyond the `disk` fault's sync delay (no I/O errors, torn writes or
//! slow state-machine reads); three or more faults at once; API
//! routes other than register, login, bids, proxy bids, buy now, auction and bid history
//! reads; HTTP keep-alive.

// Without tokio's RNG seeded a run is not a function of its seed, and a failure found in a
// sweep would not replay from its printed command: refuse to build rather than run unseeded.
// rustdoc collecting doctests (`cfg(doctest)`) does not see RUSTFLAGS and runs no simulation.
#[cfg(not(any(tokio_unstable, doctest)))]
compile_error!(
    "auction-sim needs RUSTFLAGS=\"--cfg tokio_unstable\" (source cluster/bin/env.sh): turmoil seeds \
     tokio's RNG only then, and without it a seed does not reproduce its run"
);

pub mod admin;
pub mod api_client;
pub mod api_history;
pub mod client;
pub mod config;
pub mod fault_state;
pub mod http;
pub mod invariants;
pub mod nemesis;
pub mod net;
pub mod node;
pub mod rng;
pub mod run;
pub mod stamps;
pub mod storage;
pub mod task_ids;

pub use config::{FaultKind, FaultMix, PlantedBug, SimConfig};
pub use run::{replay_in_fresh_process, run, run_seeds, RunOutcome};
