//! What the measured phase cost the machine: the CPU seconds of the processes named by
//! `--cpu-pids` (the nodes) and of the load generator itself, sampled from `/proc` right
//! before the first measured operation and right after the last; the nodes' resident memory
//! at the end; and the WAL syncs the nodes made ([`metrics`](super::metrics)). CPU is also
//! given per 1,000 bid decisions (manual bids accepted or refused as too low, the `bid` row's
//! `done + rejected`, as `cluster/bin/bench-table` counts them).
//!
//! A named process that is gone before the phase is an error; one that is gone after it is a
//! warning on stderr and an unknown (`null`) server CPU and RSS, so the rest of the report
//! survives.
//!
//! Not here: CPU of processes the nodes started, other systems than Linux (the load
//! generator's CPU is then `null`).

use anyhow::Context;
use serde_json::{json, Value};

use super::procfs::{self, Pid};

/// Decisions in the unit of the per-decision CPU figures.
const DECISIONS_PER_UNIT: f64 = 1_000.0;

/// CPU time so far, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// Summed over the named processes; `None` when none are named (or one is gone).
    pub servers_ticks: Option<u64>,
    /// This process; `None` when `/proc/self/stat` cannot be read.
    pub own_ticks: Option<u64>,
}

/// The processes to watch.
pub struct Watch {
    pids: Vec<Pid>,
    ticks_per_second: u64,
}

impl Watch {
    /// Fails, naming it, if a process cannot be read now.
    pub fn new(pids: Vec<Pid>) -> anyhow::Result<Watch> {
        for &pid in &pids {
            procfs::process_ticks(pid).context("--cpu-pids names a process that is not there")?;
        }
        Ok(Watch {
            pids,
            ticks_per_second: procfs::clock_ticks_per_second(),
        })
    }

    pub fn ticks_per_second(&self) -> u64 {
        self.ticks_per_second
    }

    /// The CPU time so far; an error if a named process is gone.
    pub fn sample(&self) -> anyhow::Result<CpuSample> {
        let servers_ticks = if self.pids.is_empty() {
            None
        } else {
            let mut sum = 0u64;
            for &pid in &self.pids {
                sum = sum.saturating_add(procfs::process_ticks(pid)?);
            }
            Some(sum)
        };
        Ok(CpuSample {
            servers_ticks,
            own_ticks: procfs::own_ticks().ok(),
        })
    }

    /// [`Watch::sample`], with a gone process a warning and an unknown server CPU.
    pub fn sample_or_warn(&self) -> CpuSample {
        self.sample().unwrap_or_else(|error| {
            eprintln!("warning: no server CPU for the measured phase: {error:#}");
            CpuSample {
                servers_ticks: None,
                own_ticks: procfs::own_ticks().ok(),
            }
        })
    }

    /// Each named process's resident memory now, in bytes (`None`, with a warning, if gone).
    pub fn rss_bytes(&self) -> Vec<Option<u64>> {
        self.pids
            .iter()
            .map(|&pid| {
                procfs::rss_bytes(pid)
                    .inspect_err(|error| eprintln!("warning: no RSS: {error:#}"))
                    .ok()
            })
            .collect()
    }
}

/// CPU seconds between two samples of one counter (`None` if either is unknown or it went
/// backwards).
pub fn seconds_between(
    before: Option<u64>,
    after: Option<u64>,
    ticks_per_second: u64,
) -> Option<f64> {
    let ticks = after?.checked_sub(before?)?;
    Some(ticks as f64 / ticks_per_second.max(1) as f64)
}

/// Seconds per 1,000 decisions (`None` without decisions).
pub fn per_thousand(seconds: Option<f64>, decisions: u64) -> Option<f64> {
    (decisions > 0).then_some(seconds? / decisions as f64 * DECISIONS_PER_UNIT)
}

/// The CPU of the measured phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpu {
    pub servers_seconds: Option<f64>,
    pub load_generator_seconds: Option<f64>,
}

impl Cpu {
    pub fn between(before: CpuSample, after: CpuSample, ticks_per_second: u64) -> Cpu {
        Cpu {
            servers_seconds: seconds_between(
                before.servers_ticks,
                after.servers_ticks,
                ticks_per_second,
            ),
            load_generator_seconds: seconds_between(
                before.own_ticks,
                after.own_ticks,
                ticks_per_second,
            ),
        }
    }

    /// The report's `cpu` object.
    pub fn to_json(self, bid_decisions: u64) -> Value {
        json!({
            "serversSeconds": self.servers_seconds,
            "loadGeneratorSeconds": self.load_generator_seconds,
            "serversSecondsPer1kBids": per_thousand(self.servers_seconds, bid_decisions),
            "loadGeneratorSecondsPer1kBids":
                per_thousand(self.load_generator_seconds, bid_decisions),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_difference_in_seconds_and_per_thousand_decisions() {
        let before = CpuSample {
            servers_ticks: Some(1_000),
            own_ticks: Some(50),
        };
        let after = CpuSample {
            servers_ticks: Some(1_600),
            own_ticks: Some(80),
        };
        let cpu = Cpu::between(before, after, 100);
        assert_eq!(cpu.servers_seconds, Some(6.0));
        assert_eq!(cpu.load_generator_seconds, Some(0.3));
        let json = cpu.to_json(2_000);
        assert_eq!(json["serversSeconds"], 6.0);
        assert_eq!(json["serversSecondsPer1kBids"], 3.0);
        assert!(
            (json["loadGeneratorSecondsPer1kBids"]
                .as_f64()
                .expect("a number")
                - 0.15)
                .abs()
                < 1e-12
        );
        let no_bids = cpu.to_json(0);
        assert!(no_bids["serversSecondsPer1kBids"].is_null());
        assert_eq!(no_bids["loadGeneratorSeconds"], 0.3);
    }

    #[test]
    fn unknown_or_backwards_samples_give_unknown_cpu() {
        let known = CpuSample {
            servers_ticks: Some(10),
            own_ticks: Some(10),
        };
        let unnamed = CpuSample {
            servers_ticks: None,
            own_ticks: Some(30),
        };
        let cpu = Cpu::between(known, unnamed, 100);
        assert_eq!(
            cpu,
            Cpu {
                servers_seconds: None,
                load_generator_seconds: Some(0.2)
            }
        );
        assert!(cpu.to_json(5)["serversSeconds"].is_null());
        assert_eq!(seconds_between(Some(10), Some(9), 100), None);
    }

    #[test]
    fn a_process_that_is_not_there_is_an_error() {
        assert!(Watch::new(vec![u32::MAX]).is_err());
        let watch = Watch::new(vec![std::process::id()]).expect("we are here");
        let sample = watch.sample().expect("readable");
        assert!(sample.servers_ticks.is_some() && sample.own_ticks.is_some());
        assert!(watch.rss_bytes()[0].is_some_and(|bytes| bytes > 0));
        let unwatched = Watch::new(Vec::new()).expect("nothing to check");
        assert_eq!(unwatched.sample().expect("readable").servers_ticks, None);
        assert!(unwatched.rss_bytes().is_empty());
    }
}
