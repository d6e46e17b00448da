//! Why two runs of one seed in one process diverged, and the fix.
//!
//! tokio numbers tasks from one process-wide counter, and a current-thread runtime keeps its
//! tasks in a list of [`TASK_LIST_SHARDS`] shards picked by `task id mod shards`. When turmoil
//! crashes a node it drops the node's runtime, which shuts the tasks down shard by shard: the
//! order in which the node's tasks are dropped (and so the order in which their channels
//! close and their peers wake) depends on the task ids' phase modulo the shard count. A fresh
//! process starts the counter at 1; a second run in the same process starts wherever the first
//! left it, so its first crash dropped tasks in another order and the runs diverged from there.
//!
//! [`align`] spawns (and never runs) no-op tasks until the next task id is a multiple of
//! [`ALIGN_TO`], before every run, so every run, first or not, numbers its tasks in the same
//! phase. [`ALIGN_TO`] is a multiple of every shard count tokio uses for a current-thread
//! runtime (4) and of those of small multi-thread ones.

/// Shards of a current-thread runtime's task list (tokio: `next_power_of_two(1) * 4`).
pub const TASK_LIST_SHARDS: u64 = 4;
/// The phase every run starts its task ids at (a multiple of [`TASK_LIST_SHARDS`]).
pub const ALIGN_TO: u64 = 64;

/// Makes the next task id spawned in this process a multiple of [`ALIGN_TO`]. Returns the id
/// of the last no-op task spawned (for tests), or `None` when no runtime could be built.
pub fn align() -> Option<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().ok()?;
    let mut last = None;
    // Bounded: the counter moves by at least one per spawn, so ALIGN_TO spawns reach the phase
    // (other threads spawning meanwhile only make it reach it sooner or later by a lap).
    for _ in 0..ALIGN_TO * 4 {
        let id = runtime
            .spawn(async {})
            .id()
            .to_string()
            .parse::<u64>()
            .ok()?;
        last = Some(id);
        if (id + 1) % ALIGN_TO == 0 {
            break;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::{align, ALIGN_TO};

    #[test]
    fn after_aligning_the_next_task_id_is_a_multiple_of_the_phase() {
        for _ in 0..3 {
            let last = align().expect("a runtime");
            assert_eq!((last + 1) % ALIGN_TO, 0, "last no-op task {last}");
        }
    }
}
