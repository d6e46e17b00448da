//! The summary of a checked run: one line per check, the counts of operations, and the
//! per-auction linearizability verdicts; `Display` for humans, serde JSON for machines.
//!
//! A check is `passed`, `failed` (with details, at most [`DETAILS_MAX`] kept) or `unknown` (it
//! could not decide, e.g. a final bid history was cut). A run is valid when no check failed;
//! `unknown` is reported separately so a harness can decide to retry with a larger bound. A
//! linearizability search that hits its bound is a *failure*, not an unknown: an undecided
//! history has not been shown linearizable.
//!
//! Not done yet: no HTML or timeline rendering of the history (Jepsen's `timeline.html`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::OpCounts;
use crate::linearizability::{AuctionCheck, Verdict};

/// Details kept per check; more are counted in `details_omitted`.
pub const DETAILS_MAX: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckStatus {
    Passed,
    Failed,
    Unknown,
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub name: String,
    pub status: CheckStatus,
    /// How many things (operations, auctions, replicas) the check looked at.
    pub checked: u64,
    pub details: Vec<String>,
    pub details_omitted: u64,
}

impl CheckOutcome {
    pub fn new(name: &str) -> CheckOutcome {
        CheckOutcome {
            name: name.to_owned(),
            status: CheckStatus::Passed,
            checked: 0,
            details: Vec::new(),
            details_omitted: 0,
        }
    }

    /// Records a violation; the check has failed.
    pub fn fail(&mut self, detail: String) {
        self.status = CheckStatus::Failed;
        self.note(detail);
    }

    /// Records that something could not be decided; a failure stays a failure.
    pub fn undecided(&mut self, reason: String) {
        if self.status == CheckStatus::Passed {
            self.status = CheckStatus::Unknown;
        }
        self.note(reason);
    }

    fn note(&mut self, detail: String) {
        if self.details.len() < DETAILS_MAX {
            self.details.push(detail);
        } else {
            self.details_omitted += 1;
        }
    }

    pub fn is_failed(&self) -> bool {
        self.status == CheckStatus::Failed
    }
}

/// Folds per-auction verdicts into one check.
pub fn linearizability_outcome(auctions: &[AuctionCheck]) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("linearizability");
    for auction in auctions {
        outcome.checked += 1;
        match &auction.verdict {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable {
                window,
                explanation,
            } => outcome.fail(format!(
                "auction {}: not linearizable by event {} (culprit op {}; window ops {:?}): {}",
                auction.auction_id,
                window.prefix_end_index,
                window
                    .culprit
                    .map_or_else(|| "?".to_owned(), |id| id.to_string()),
                window.ops,
                explanation
            )),
            // A search that gave up has not shown the history linearizable: a bug it could not
            // sort out must not pass, so the run fails and the bound is raised or the part cut.
            Verdict::Unknown { reason } => outcome.fail(format!(
                "auction {}: the search gave up, which is not a pass: {reason}",
                auction.auction_id
            )),
        }
    }
    outcome
}

/// Everything a run's checks found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub counts: OpCounts,
    pub checks: Vec<CheckOutcome>,
    pub auctions: Vec<AuctionCheck>,
}

impl Report {
    /// No check failed (some may be unknown).
    pub fn is_valid(&self) -> bool {
        !self.checks.iter().any(CheckOutcome::is_failed)
    }

    pub fn has_unknown(&self) -> bool {
        self.checks
            .iter()
            .any(|check| check.status == CheckStatus::Unknown)
    }

    pub fn check(&self, name: &str) -> Option<&CheckOutcome> {
        self.checks.iter().find(|check| check.name == name)
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckStatus::Passed => "passed",
            CheckStatus::Failed => "FAILED",
            CheckStatus::Unknown => "unknown",
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = &self.counts;
        writeln!(
            f,
            "operations: {} ok, {} fail, {} unknown ({} reads, {} not modelled)",
            counts.ok, counts.fail, counts.unknown, counts.reads, counts.unchecked
        )?;
        for check in &self.checks {
            writeln!(
                f,
                "{:<24} {:<8} ({} checked)",
                check.name, check.status, check.checked
            )?;
            for detail in &check.details {
                writeln!(f, "    - {detail}")?;
            }
            if check.details_omitted > 0 {
                writeln!(f, "    ... and {} more", check.details_omitted)?;
            }
        }
        let verdict = if self.is_valid() { "VALID" } else { "INVALID" };
        let unknown = if self.has_unknown() {
            " (some checks unknown)"
        } else {
            ""
        };
        writeln!(f, "result: {verdict}{unknown}")
    }
}
