//! Tests of the checkers: hand-made histories that must pass and ones that must fail, plus a
//! property test over histories recorded from a real sequential run.

mod checks;
mod common;
mod history;
mod linearizability;
mod sequential;
