//! One run: build the simulated cluster, drive the workload and the nemesis, heal, wait for the
//! cluster to be quiet, read every replica and check the history.
//!
//! Phases, all in simulated time and each bounded:
//! 1. start every node (node 1 bootstraps the groups) and create the hot auctions;
//! 2. the workload for `duration_ms`, with the fault schedule applied between steps (network
//!    and crash faults by the driver itself, membership changes and leader transfers by the
//!    admin process, see [`crate::admin`]);
//! 3. heal the last faults, let the admin process finish its queue, bring back as voters the
//!    nodes a membership fault left out (its healing given up under later faults), let the
//!    clients finish their last operations;
//! 4. wait until, in every group, every node is a voter again and has applied the leader's
//!    whole log (quiet); a node removed during the run is thus checked like any other replica
//!    at the end, and a node that cannot be brought back fails the run;
//! 5. digest every replica of every group, read the final auctions from one replica per shard,
//!    and run the `auction-jepsen` checks.
//!
//! The trace hash covers the history, the faults as applied and the replica digests: two runs
//! of one config give the same hash when the simulation is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use auction_jepsen::{
    check_run_timed, replica_digest, FinalState, History, LinearizabilityConfig, ReplicaDigest,
    Report, TimingConfig,
};
use auction_raft::host::GroupReader;
use auction_raft::GroupId;
use auction_statemachine::hash::Fnv1a64;
use auction_statemachine::KvRead;

use crate::admin::{run_admin, AdminAction, AdminDesk};
use crate::api_history;
use crate::client::{
    self, run_seller, run_setup, Client, Workload, CLIENT_TIMEOUT_MS, SETUP_MS_MAX,
    WRITE_ATTEMPTS_MAX,
};
use crate::config::{PlantedBug, SimConfig};
use crate::fault_state::{self, FaultState};
use crate::invariants::{self, RaftInvariants, Sample};
use crate::nemesis::{self, Fault, Scheduled, ACTIVE_FAULTS_MAX, LATENCY_MS};
use crate::net::{NodeClock, EPOCH_MS};
use crate::node::{node_name, run_node, HostRegistry, SimHost};
use crate::stamps;
use crate::storage::SimDisk;
use crate::storage::SimStorage;

/// How often the driver looks at the cluster while waiting for it to be quiet.
const QUIET_CHECK_MS: u64 = 100;
/// Consecutive quiet checks that make the cluster quiet.
const QUIET_CHECKS: u32 = 5;
/// Longest wait for the cluster to become quiet after the last fault is healed.
const QUIET_MS_MAX: u64 = 30_000;
/// Longest wait for the admin process to finish its queue after the workload.
const ADMIN_DRAIN_MS_MAX: u64 = 120_000;
/// Rounds of bringing left-out nodes back after the faults.
const RESTORE_ROUNDS_MAX: u64 = 3;
/// Longest wait for every group to show a leader before looking at memberships.
const LEADERS_MS_MAX: u64 = 10_000;
/// Simulated time one step advances.
const TICK_MS: u64 = 1;
/// Model steps one auction's linearizability search may take.
pub const SEARCH_STATES_MAX: u64 = 2_000_000;
/// How long after the last end a client saw the driver lets the cluster close it before it
/// waits for quiet.
const CLOSE_GRACE_MS: i64 = 2_000;
/// Longest an auction may stay open after `max(its end, the heal)`: a few election time-outs
/// and tick intervals.
pub const CLOSE_WITHIN_MS: i64 = 5_000;
/// How far an effective time may be from the real time of its operation: the cluster's
/// `clock_skew_ms_max` plus the error of a leader's view of its peers' clocks (half a round
/// trip; round trips above [`auction_raft::host::CLOCK_SAMPLE_RTT_MS_MAX`] are not used).
pub fn effective_time_slack_ms() -> i64 {
    auction_raft::host::CLOCK_SKEW_MS_MAX_DEFAULT + auction_raft::host::CLOCK_SAMPLE_RTT_MS_MAX
}

/// Why a run could not be judged, or what it found besides the history checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(pub String);

/// Everything a run produced.
pub struct RunOutcome {
    pub config: SimConfig,
    /// The history checks; `None` when the run ended before it could be checked.
    pub report: Option<Report>,
    /// Failures outside the history checks (the cluster never converged, setup failed, …).
    pub problems: Vec<Problem>,
    /// The faults as applied, one line each.
    pub faults: Vec<String>,
    pub history: History,
    pub digests: Vec<ReplicaDigest>,
    pub trace_hash: u64,
    /// Simulated milliseconds the whole run took.
    pub simulated_ms: u64,
}

impl RunOutcome {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.report.as_ref().is_some_and(Report::is_valid)
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        writeln!(
            f,
            "seed {} {verdict}: {} events, {} faults, {} simulated ms, trace hash {:016x}",
            self.config.seed,
            self.history.len(),
            self.faults.len(),
            self.simulated_ms,
            self.trace_hash
        )?;
        for problem in &self.problems {
            writeln!(f, "  problem: {}", problem.0)?;
        }
        if let Some(report) = self.report.as_ref().filter(|report| !report.is_valid()) {
            writeln!(f, "{report}")?;
        }
        Ok(())
    }
}

/// Turns the planted bug on for the life of the guard (off again even on a panic).
struct PlantedGuard(Option<PlantedBug>);

impl PlantedGuard {
    fn new(bug: Option<PlantedBug>) -> PlantedGuard {
        if let Some(bug) = bug {
            set_planted(bug, true);
        }
        PlantedGuard(bug)
    }
}

impl Drop for PlantedGuard {
    fn drop(&mut self) {
        if let Some(bug) = self.0 {
            set_planted(bug, false);
        }
    }
}

fn set_planted(bug: PlantedBug, on: bool) {
    use auction_raft::host::planted::{set, Bug};
    match bug {
        PlantedBug::SkipDedup => auction_statemachine::machine::planted::set_skip_dedup(on),
        PlantedBug::AcknowledgeBeforeCommit => set(Bug::AcknowledgeBeforeCommit, on),
        PlantedBug::RestoreLeadership => set(Bug::RestoreLeadership, on),
        PlantedBug::LocalLinearizableRead => set(Bug::LocalLinearizableRead, on),
        PlantedBug::UnboundedStamps => set(Bug::UnboundedStamps, on),
    }
}

/// The driver's state during a run.
struct Driver<'a> {
    config: SimConfig,
    sim: turmoil::Sim<'a>,
    registry: Rc<HostRegistry>,
    workload: Rc<Workload>,
    admin: Rc<AdminDesk>,
    faults: Vec<String>,
    problems: Vec<Problem>,
    fault_state: FaultState,
    /// Simulated ms at which the workload (and the fault schedule's clock) started.
    workload_start_ms: u64,
    /// Simulated ms at which the last fault was healed and every node was a voter again.
    healed_ms: u64,
    /// Every node's clock, by node id - 1.
    clocks: Vec<Arc<NodeClock>>,
    /// The node whose clock a clock fault has set off, if any (one at a time).
    clock_off: Option<u64>,
    /// Every node's disk, by node id - 1, for the Raft invariants.
    disks: Vec<Arc<SimDisk>>,
    invariants: RaftInvariants,
    /// Simulated ms of the next sample of the Raft invariants.
    next_sample_ms: u64,
}

/// ", with N other(s) active" for fault lines, so overlaps read at a glance.
fn others_active(others: usize) -> String {
    match others {
        0 => String::new(),
        1 => " (1 other fault active)".to_owned(),
        n => format!(" ({n} other faults active)"),
    }
}

/// Runs one simulation of `config`.
pub fn run(config: &SimConfig) -> RunOutcome {
    // Every run numbers its tokio tasks in the same phase, first in its process or not.
    crate::task_ids::align();
    let planted = PlantedGuard::new(config.planted);
    let mut driver = Driver::new(config);
    driver.drive();
    drop(planted);
    driver.finish()
}

fn sim_ms(sim: &turmoil::Sim<'_>) -> u64 {
    u64::try_from(sim.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl<'a> Driver<'a> {
    fn new(config: &SimConfig) -> Driver<'a> {
        let total_ms = SETUP_MS_MAX
            + config.duration_ms
            + CLIENT_TIMEOUT_MS * u64::from(WRITE_ATTEMPTS_MAX + 1)
            + QUIET_MS_MAX
            + (RESTORE_ROUNDS_MAX + 1) * (ADMIN_DRAIN_MS_MAX + LEADERS_MS_MAX)
            // The last auctions' ends, the probe and the second wait for quiet.
            + 30_000
            + CLIENT_TIMEOUT_MS * u64::from(WRITE_ATTEMPTS_MAX + 1)
            + QUIET_MS_MAX
            + 10_000;
        let mut sim = turmoil::Builder::new()
            .rng_seed(config.seed)
            .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS.unsigned_abs()))
            .simulation_duration(Duration::from_millis(total_ms))
            .tick_duration(Duration::from_millis(TICK_MS))
            .min_message_latency(Duration::from_millis(LATENCY_MS.0))
            .max_message_latency(Duration::from_millis(LATENCY_MS.1))
            .tcp_capacity(65_536)
            .build();
        let registry = Rc::new(HostRegistry::default());
        let groups: Vec<GroupId> = (0..=config.shards).collect();
        let clocks: Vec<Arc<NodeClock>> = (1..=config.nodes)
            .map(|_| Arc::new(NodeClock::default()))
            .collect();
        let disks: Vec<Arc<SimDisk>> = (1..=config.nodes)
            .map(|_| Arc::new(SimDisk::new(groups.iter().copied())))
            .collect();
        for ((id, clock), disk) in (1..=config.nodes)
            .zip(clocks.iter().cloned())
            .zip(disks.iter().cloned())
        {
            let registry = registry.clone();
            let node_config = config.clone();
            sim.host(node_name(id), move || {
                run_node(
                    node_config.clone(),
                    id,
                    disk.clone(),
                    registry.clone(),
                    clock.clone(),
                )
            });
        }
        let workload = Rc::new(Workload::new(config));
        sim.client("setup", run_setup(config.clone(), workload.clone()));
        sim.client("seller", run_seller(config.clone(), workload.clone()));
        for process in 1..=config.clients {
            let client = Client::new(config, process, workload.clone());
            sim.client(format!("c{process}"), client.run());
        }
        let admin = Rc::new(AdminDesk::default());
        sim.client(
            "admin",
            run_admin(admin.clone(), config.nodes, config.shards),
        );
        Driver {
            config: config.clone(),
            sim,
            registry,
            workload,
            admin,
            faults: Vec::new(),
            problems: Vec::new(),
            fault_state: FaultState::new(),
            workload_start_ms: 0,
            healed_ms: 0,
            clocks,
            clock_off: None,
            disks,
            invariants: RaftInvariants::default(),
            next_sample_ms: 0,
        }
    }

    /// One simulation step; a failure of the simulation is recorded and stops the run. The
    /// Raft invariants are sampled every [`invariants::SAMPLE_EVERY_MS`].
    fn step(&mut self) -> Result<bool, ()> {
        let finished = self.sim.step().map_err(|error| {
            self.problems
                .push(Problem(format!("simulation failed: {error}")));
        })?;
        let now = sim_ms(&self.sim);
        if now >= self.next_sample_ms {
            self.next_sample_ms = now + invariants::SAMPLE_EVERY_MS;
            self.sample_invariants(now);
        }
        Ok(finished)
    }

    fn sample_invariants(&mut self, now: u64) {
        for (id, disk) in (1..=self.config.nodes).zip(self.disks.iter()) {
            let Some(host) = self.registry.get(id) else {
                continue;
            };
            for group in 0..=self.config.shards {
                let Ok(status) = host.group_status(group) else {
                    continue;
                };
                let sample = Sample {
                    node: id,
                    group,
                    incarnation: disk.incarnations(),
                    term: status.term,
                    committed: status.committed_index,
                    disk,
                };
                self.invariants.observe(&sample, now);
            }
        }
    }

    fn drive(&mut self) {
        if self.setup().is_err() || self.workload_phase().is_err() {
            return;
        }
        self.healed_ms = sim_ms(&self.sim);
        if self.drain_clients().is_err() || self.wait_for_ends().is_err() {
            return;
        }
        if self.wait_quiet().is_err() || self.probe().is_err() {
            return;
        }
        let _ = self.wait_quiet();
    }

    fn setup(&mut self) -> Result<(), ()> {
        let deadline = sim_ms(&self.sim) + SETUP_MS_MAX + 1_000;
        while !self.workload.ready.get() {
            if sim_ms(&self.sim) > deadline {
                self.problems
                    .push(Problem("the auctions were not created in time".to_owned()));
                return Err(());
            }
            self.step()?;
        }
        Ok(())
    }

    fn workload_phase(&mut self) -> Result<(), ()> {
        let start = sim_ms(&self.sim);
        self.workload_start_ms = start;
        let end = start + self.config.duration_ms;
        self.workload.stop_at_ms.set(end);
        let schedule = nemesis::schedule(&self.config);
        // Active faults with the time each heals, in start order (at most ACTIVE_FAULTS_MAX).
        let mut active: Vec<(u64, Fault)> = Vec::new();
        let mut pending = schedule.iter().peekable();
        while sim_ms(&self.sim) < end {
            let now = sim_ms(&self.sim);
            let (due, still): (Vec<_>, Vec<_>) =
                active.drain(..).partition(|(until, _)| *until <= now);
            active = still;
            for (_, fault) in due {
                self.heal(&fault, now - start, active.len());
                if let Fault::SlowDisk {
                    node,
                    bounce_ms: Some(bounce_ms),
                    ..
                } = fault
                {
                    let crash = self.bounce(node, bounce_ms, now - start, active.len());
                    active.push((now + bounce_ms, crash));
                }
            }
            while active.len() < ACTIVE_FAULTS_MAX
                && pending.peek().is_some_and(|next| start + next.at_ms <= now)
            {
                if let Some(next) = pending.next() {
                    let fault = self.begin(next, now - start, active.len());
                    active.push((now + next.duration_ms, fault));
                }
            }
            self.step()?;
        }
        let now = sim_ms(&self.sim);
        while let Some((_, fault)) = active.pop() {
            self.heal(&fault, now - start, active.len());
        }
        self.finish_admin()?;
        self.restore_membership()
    }

    /// A disk fault's bounce: `node` crashes now, with its unsynced writes in flight (the slow
    /// sync still waiting), and restarts `down_ms` later; the crash fault to heal then.
    fn bounce(&mut self, node: u64, down_ms: u64, offset_ms: u64, others: usize) -> Fault {
        let crash = Fault::Crash { node };
        self.log(format!(
            "{offset_ms:>6} ms start: {} for {down_ms} ms (the slow disk's bounce){}",
            crash.describe(),
            others_active(others)
        ));
        let changes = self.fault_state.start(&crash, self.config.nodes);
        fault_state::apply(&mut self.sim, &changes);
        crash
    }

    fn disk_of(&self, id: u64) -> Option<&Arc<SimDisk>> {
        usize::try_from(id.checked_sub(1)?)
            .ok()
            .and_then(|index| self.disks.get(index))
    }

    fn heal(&mut self, fault: &Fault, offset_ms: u64, others: usize) {
        self.log(format!(
            "{offset_ms:>6} ms heal: {}{}",
            fault.describe(),
            others_active(others)
        ));
        let changes = self.fault_state.heal(fault, self.config.nodes);
        fault_state::apply(&mut self.sim, &changes);
        if let Fault::SlowDisk { node, .. } = fault {
            if let Some(disk) = self.disk_of(*node) {
                disk.set_sync_delay_ms(0);
            }
        }
        if let Fault::Clock { node, .. } = fault {
            if self.clock_off == Some(*node) && !is_skipped_clock(fault) {
                if let Some(clock) = self.clock_of(*node) {
                    clock.heal();
                }
                self.clock_off = None;
            }
        }
        if let Some(action) = fault.admin_heal() {
            self.admin.submit(action);
        }
    }

    /// After the faults: brings back, as voters of every group, the nodes that a membership
    /// fault left out (its healing was given up under later faults). Bounded rounds; a node
    /// still out afterwards makes the run fail at the quiet check.
    fn restore_membership(&mut self) -> Result<(), ()> {
        for _ in 0..RESTORE_ROUNDS_MAX {
            let outside = self.wait_outside()?;
            if outside.is_empty() {
                break;
            }
            for node in outside {
                let offset_ms = sim_ms(&self.sim).saturating_sub(self.workload_start_ms);
                self.log(format!(
                    "{offset_ms:>6} ms restore: n{node} back as a voter of every group"
                ));
                self.admin.submit(AdminAction::Promote { node });
            }
            self.finish_admin()?;
        }
        self.admin.stop();
        Ok(())
    }

    /// The nodes that are not voters of some group, per its leader, once every group has
    /// one (waits at most [`LEADERS_MS_MAX`]; nodes of a group without a leader count as in).
    fn wait_outside(&mut self) -> Result<Vec<u64>, ()> {
        let deadline = sim_ms(&self.sim) + LEADERS_MS_MAX;
        loop {
            let views: Vec<Option<BTreeSet<u64>>> = (0..=self.config.shards)
                .map(|group| self.voters(group))
                .collect();
            if views.iter().all(Option::is_some) || sim_ms(&self.sim) > deadline {
                let mut outside = BTreeSet::new();
                for voters in views.into_iter().flatten() {
                    outside.extend((1..=self.config.nodes).filter(|id| !voters.contains(id)));
                }
                return Ok(outside.into_iter().collect());
            }
            self.step()?;
        }
    }

    /// The voters of `group` per its leader's metrics, when a running node leads it.
    fn voters(&self, group: GroupId) -> Option<BTreeSet<u64>> {
        (1..=self.config.nodes).find_map(|id| {
            let host = self.host(id)?;
            let status = host.group_status(group).ok()?;
            (status.leader_id == Some(id) && status.is_leader())
                .then(|| status.voters.into_iter().collect())
        })
    }

    /// Lets the admin process finish its queue (each action is bounded), then stops it.
    fn finish_admin(&mut self) -> Result<(), ()> {
        let deadline = sim_ms(&self.sim) + ADMIN_DRAIN_MS_MAX;
        while !self.admin.is_idle() {
            if sim_ms(&self.sim) > deadline {
                self.problems.push(Problem(
                    "the admin process did not finish in time".to_owned(),
                ));
                return Err(());
            }
            self.step()?;
        }
        Ok(())
    }

    fn begin(&mut self, scheduled: &Scheduled, offset_ms: u64, others: usize) -> Fault {
        let slot = scheduled.draw % u64::from(self.config.shards.max(1));
        // `slot < shards`, so it fits the group id's width.
        let group = 1 + slot as GroupId;
        let leader = self.leader(group).map(|leader| (group, leader));
        let mut fault = nemesis::resolve(scheduled, self.config.nodes, leader);
        if let Fault::Clock {
            node,
            offset_ms,
            drift_ppm,
        } = &mut fault
        {
            // One clock off at a time: a majority of clocks stay right.
            if self.clock_off.is_some() {
                (*offset_ms, *drift_ppm) = (0, 0);
            } else {
                self.clock_off = Some(*node);
                if let Some(clock) = self.clock_of(*node) {
                    clock.set_fault(*offset_ms, *drift_ppm);
                }
            }
        }
        self.log(format!(
            "{offset_ms:>6} ms start: {} for {} ms{}",
            fault.describe(),
            scheduled.duration_ms,
            others_active(others)
        ));
        let changes = self.fault_state.start(&fault, self.config.nodes);
        fault_state::apply(&mut self.sim, &changes);
        if let Fault::SlowDisk { node, sync_ms, .. } = &fault {
            if let Some(disk) = self.disk_of(*node) {
                disk.set_sync_delay_ms(*sync_ms);
            }
        }
        if let Some(action) = fault.admin_start() {
            self.admin.submit(action);
        }
        fault
    }

    fn log(&mut self, line: String) {
        tracing::info!(seed = self.config.seed, "{line}");
        self.faults.push(line);
    }

    fn clock_of(&self, id: u64) -> Option<&Arc<NodeClock>> {
        usize::try_from(id)
            .ok()
            .and_then(|id| self.clocks.get(id.wrapping_sub(1)))
    }

    fn host(&self, id: u64) -> Option<Arc<SimHost>> {
        self.registry.get(id)
    }

    /// The leader of `group` as the first running node sees it.
    fn leader(&self, group: GroupId) -> Option<u64> {
        (1..=self.config.nodes).find_map(|id| {
            let host = self.host(id)?;
            host.leader_of(group)
        })
    }

    /// Lets every client finish its last operation (each is bounded by its time-outs).
    fn drain_clients(&mut self) -> Result<(), ()> {
        let deadline = sim_ms(&self.sim) + CLIENT_TIMEOUT_MS * u64::from(WRITE_ATTEMPTS_MAX + 1);
        loop {
            if self.step()? {
                return Ok(());
            }
            if sim_ms(&self.sim) > deadline {
                self.problems
                    .push(Problem("clients did not finish in time".to_owned()));
                return Err(());
            }
        }
    }

    /// Runs the after-healing probe ([`client::run_probe`]) to its end.
    fn probe(&mut self) -> Result<(), ()> {
        self.sim.client(
            "probe",
            client::run_probe(self.config.clone(), self.workload.clone()),
        );
        self.drain_clients()
    }

    /// Lets the simulation run until the last end a client saw is [`CLOSE_GRACE_MS`] past, so
    /// that the auctions close before the final state is read.
    fn wait_for_ends(&mut self) -> Result<(), ()> {
        let last_end = self.workload.ends.borrow().values().copied().max();
        let Some(last_end) = last_end else {
            return Ok(());
        };
        let until = last_end.saturating_add(CLOSE_GRACE_MS);
        while crate::net::EPOCH_MS.saturating_add(i64::try_from(sim_ms(&self.sim)).unwrap_or(0))
            < until
        {
            self.step()?;
        }
        Ok(())
    }

    /// Whether, in every group, every node runs, is a voter, agrees on the leader and has
    /// applied the leader's whole log.
    fn is_quiet(&self) -> bool {
        let groups = 0..=self.config.shards;
        let everyone: BTreeSet<u64> = (1..=self.config.nodes).collect();
        groups.into_iter().all(|group| {
            if self.voters(group).as_ref() != Some(&everyone) {
                return false;
            }
            let mut views = Vec::new();
            for id in 1..=self.config.nodes {
                let Some(host) = self.host(id) else {
                    return false;
                };
                let Ok(status) = host.group_status(group) else {
                    return false;
                };
                views.push((
                    status.leader_id,
                    status.last_log_index,
                    status.applied_index,
                ));
            }
            let Some((Some(leader), _, _)) = views.first().copied() else {
                return false;
            };
            let Some(leader_last) = usize::try_from(leader)
                .ok()
                .and_then(|index| views.get(index.wrapping_sub(1)))
                .and_then(|view| view.1)
            else {
                return false;
            };
            views
                .iter()
                .all(|view| view.0 == Some(leader) && view.2 == Some(leader_last))
        })
    }

    fn wait_quiet(&mut self) -> Result<(), ()> {
        let deadline = sim_ms(&self.sim) + QUIET_MS_MAX;
        let mut quiet_checks = 0;
        let mut next_check = sim_ms(&self.sim);
        while quiet_checks < QUIET_CHECKS {
            if sim_ms(&self.sim) > deadline {
                let memberships: Vec<String> = (0..=self.config.shards)
                    .map(|group| match self.voters(group) {
                        Some(voters) => format!("group {group} voters {voters:?}"),
                        None => format!("group {group} without a leader"),
                    })
                    .collect();
                self.problems.push(Problem(format!(
                    "the cluster was not quiet {QUIET_MS_MAX} ms after the faults ended ({})",
                    memberships.join(", ")
                )));
                return Err(());
            }
            if sim_ms(&self.sim) >= next_check {
                quiet_checks = if self.is_quiet() { quiet_checks + 1 } else { 0 };
                next_check += QUIET_CHECK_MS;
            }
            self.step()?;
        }
        Ok(())
    }

    /// Digests every replica and reads the final auctions (from the lowest running node).
    fn final_state(&mut self) -> Option<(FinalState, Vec<ReplicaDigest>)> {
        let mut final_state = FinalState::new();
        let mut digests = Vec::new();
        for group in 0..=self.config.shards {
            let group_id = group;
            // The final auctions come from the first replica of each shard; the checks compare
            // every replica's digest, so which one does not matter when they agree.
            let mut auctions_read = group == 0;
            for id in 1..=self.config.nodes {
                let Some(reader) = self.host(id).and_then(|host| host.local_reader(group).ok())
                else {
                    continue;
                };
                let pairs = match reader.scan(&[], None, usize::MAX) {
                    Ok(pairs) => pairs,
                    Err(error) => {
                        self.problems
                            .push(Problem(format!("n{id} group {group}: {error}")));
                        return None;
                    }
                };
                digests.push(replica_digest(group_id, &node_name(id), pairs));
                if !auctions_read {
                    auctions_read = true;
                    if let Err(error) = final_state.read_all(&reader) {
                        self.problems
                            .push(Problem(format!("reading group {group}: {error}")));
                        return None;
                    }
                }
            }
        }
        Some((final_state, digests))
    }

    /// A local reader of every auction shard, from the first running node that has it.
    fn shard_readers(&self) -> BTreeMap<u32, GroupReader<SimStorage>> {
        let mut shards = BTreeMap::new();
        for group in 1..=self.config.shards {
            let reader = (1..=self.config.nodes)
                .find_map(|id| self.host(id).and_then(|host| host.local_reader(group).ok()));
            if let Some(reader) = reader {
                shards.insert(group, reader);
            }
        }
        shards
    }

    /// The history as the checker judges it: the API writes resolved from what the shards
    /// applied ([`crate::api_history`]), then the time each unknown write took effect
    /// ([`crate::stamps`]).
    fn resolved_history(&mut self, history: &History) -> History {
        let shards = self.shard_readers();
        let writes = self.workload.api_writes.borrow().clone();
        let (history, problems) = api_history::resolve_api_writes(history, &writes, &shards);
        self.problems.extend(problems.into_iter().map(Problem));
        let workload = self.workload.clone();
        let shard_of = move |write: &auction_jepsen::WriteRequest| {
            client::auction_of(&write.op).map_or(0, |auction| workload.shard_of(auction))
        };
        stamps::fill_unknown_stamps(&history, shard_of, &shards)
    }

    fn finish(mut self) -> RunOutcome {
        self.faults.extend(self.admin.take_log());
        let violations = self.invariants.violations();
        self.problems.extend(
            violations
                .into_iter()
                .map(|line| Problem(format!("Raft invariant: {line}"))),
        );
        let quiet = self.problems.is_empty();
        let state = if quiet { self.final_state() } else { None };
        let recorded = self.workload.history.borrow().clone();
        let client_problems = std::mem::take(&mut *self.workload.problems.borrow_mut());
        self.problems
            .extend(client_problems.into_iter().map(Problem));
        let (report, digests, history) = match state {
            Some((final_state, digests)) => {
                let history = self.resolved_history(&recorded);
                let reads = self.workload.bid_reads.borrow().clone();
                let read_problems = api_history::check_bid_reads(&reads, &final_state);
                self.problems.extend(read_problems.into_iter().map(Problem));
                // Ten times the library's default: a search that gives up fails the run, and a
                // few auctions with several unknown retries of one write need a few hundred
                // thousand states (seed 30: linearizable within 2 million, not 200,000).
                let config = LinearizabilityConfig {
                    search_states_max: SEARCH_STATES_MAX,
                    ..LinearizabilityConfig::default()
                };
                let timing = TimingConfig {
                    epoch_ms: EPOCH_MS,
                    skew_ms: effective_time_slack_ms(),
                    healed_at: self.healed_ms,
                    observed_at: sim_ms(&self.sim),
                    close_within_ms: CLOSE_WITHIN_MS,
                };
                match check_run_timed(&history, &final_state, &digests, &config, Some(&timing)) {
                    Ok(report) => (Some(report), digests, history),
                    Err(error) => {
                        self.problems
                            .push(Problem(format!("the history is malformed: {error}")));
                        (None, digests, history)
                    }
                }
            }
            None => (None, Vec::new(), recorded),
        };
        let trace_hash = trace_hash(&history, &self.faults, &digests, &self.problems);
        RunOutcome {
            config: self.config.clone(),
            report,
            problems: self.problems,
            faults: self.faults,
            history,
            digests,
            trace_hash,
            simulated_ms: sim_ms(&self.sim),
        }
    }
}

/// A clock fault the driver skipped because another clock was off.
fn is_skipped_clock(fault: &Fault) -> bool {
    matches!(
        fault,
        Fault::Clock {
            offset_ms: 0,
            drift_ppm: 0,
            ..
        }
    )
}

/// The run's fingerprint: history, faults, replica digests and problems.
pub fn trace_hash(
    history: &History,
    faults: &[String],
    digests: &[ReplicaDigest],
    problems: &[Problem],
) -> u64 {
    let mut hash = Fnv1a64::new();
    match history.to_json_lines() {
        Ok(lines) => hash.write_framed(lines.as_bytes()),
        Err(error) => hash.write_framed(error.to_string().as_bytes()),
    }
    for line in faults {
        hash.write_framed(line.as_bytes());
    }
    for digest in digests {
        hash.write_framed(digest.replica.as_bytes());
        hash.write(&digest.group.to_le_bytes());
        hash.write(&digest.digest.to_le_bytes());
    }
    for problem in problems {
        hash.write_framed(problem.0.as_bytes());
    }
    hash.finish()
}

/// Results of many seeds.
#[derive(Default)]
pub struct SeedsSummary {
    pub passed: Vec<u64>,
    pub failed: Vec<(u64, String)>,
}

/// Runs `count` seeds from `first`, calling `each` after every run; stops at the first
/// failure when `stop_at_failure`.
pub fn run_seeds(
    base: &SimConfig,
    first: u64,
    count: u64,
    stop_at_failure: bool,
    mut each: impl FnMut(&RunOutcome),
) -> SeedsSummary {
    let mut summary = SeedsSummary::default();
    for seed in first..first.saturating_add(count) {
        let outcome = run(&SimConfig {
            seed,
            ..base.clone()
        });
        each(&outcome);
        if outcome.passed() {
            summary.passed.push(seed);
        } else {
            summary.failed.push((seed, outcome.to_string()));
            if stop_at_failure {
                break;
            }
        }
    }
    summary
}

/// Runs `config` alone with the `sim` binary at `sim_binary`, in a child process (a fresh
/// process, as the printed reproduce command would), and returns its verdict line: a failure of
/// a sweep that does not replay from its command shows as such.
pub fn replay_in_fresh_process(sim_binary: &std::path::Path, config: &SimConfig) -> String {
    match std::process::Command::new(sim_binary)
        .args(config.cli_args())
        .output()
    {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|line| line.starts_with(&format!("seed {} ", config.seed)))
            .map_or_else(|| "no verdict".to_owned(), str::to_owned),
        Err(error) => format!("cannot run {}: {error}", sim_binary.display()),
    }
}

/// Counts of operations, for reports.
pub fn op_counts(history: &History) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    if let Ok(records) = history.operations() {
        for record in records {
            let name = match &record.status {
                auction_jepsen::OpStatus::Ok(_) => "ok",
                auction_jepsen::OpStatus::Failed => "fail",
                _ => "unknown",
            };
            *counts.entry(name).or_insert(0) += 1;
        }
    }
    counts
}
