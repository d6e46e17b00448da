//! What Linux's `/proc` says about a process: its CPU time (`utime + stime` of
//! `/proc/PID/stat`, in clock ticks, summed over all its threads), its resident memory (`VmRSS`
//! of `/proc/PID/status`), and the length of a clock tick. The parsers are pure; the readers
//! around them turn a missing process into an error that names it.
//!
//! The clock tick is the kernel's `AT_CLKTCK` from `/proc/self/auxv`: that is exactly what
//! glibc's `sysconf(_SC_CLK_TCK)` returns (and, like glibc, 100 when the kernel did not say),
//! read without a `libc` dependency.
//!
//! Not here: other systems than Linux (every reader then fails with an error), children's CPU
//! time (`cutime`, `cstime`: the processes are named one by one instead).

use anyhow::Context;

/// A process id.
pub type Pid = u32;

/// The auxiliary vector's key of the clock tick rate, and its end marker.
const AT_CLKTCK: u64 = 17;
const AT_NULL: u64 = 0;
/// glibc's value when the kernel gave none.
const CLOCK_TICKS_PER_SECOND_DEFAULT: u64 = 100;
/// Bytes in a kB of `/proc/PID/status`.
const BYTES_PER_KB: u64 = 1_024;
/// Position of `utime` among the fields after the command name (`stime` follows): fields 14
/// and 15 of proc(5), counted from the state (field 3).
const UTIME_AFTER_NAME: usize = 14 - 3;

/// `utime + stime` of a `/proc/PID/stat` line, in clock ticks. The command name (field 2) is
/// in parentheses and may itself hold spaces and parentheses, so the fields are counted from
/// the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(UTIME_AFTER_NAME);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes (`None` for a kernel thread, which has none).
pub fn parse_vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    let mut words = line.split_whitespace();
    let kilobytes: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => kilobytes.checked_mul(BYTES_PER_KB),
        _ => None,
    }
}

/// `AT_CLKTCK` of an auxiliary vector (pairs of native-endian machine words).
pub fn parse_auxv_clock_ticks(auxv: &[u8]) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |bytes: &[u8]| -> Option<u64> {
        let bytes: [u8; WORD] = bytes.try_into().ok()?;
        u64::try_from(usize::from_ne_bytes(bytes)).ok()
    };
    for pair in auxv.chunks_exact(2 * WORD) {
        let (key, value) = (word(&pair[..WORD])?, word(&pair[WORD..])?);
        match key {
            AT_NULL => return None,
            AT_CLKTCK => return (value > 0).then_some(value),
            _ => {}
        }
    }
    None
}

/// Clock ticks per second, as `sysconf(_SC_CLK_TCK)` gives them.
pub fn clock_ticks_per_second() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|auxv| parse_auxv_clock_ticks(&auxv))
        .unwrap_or(CLOCK_TICKS_PER_SECOND_DEFAULT)
}

fn read_stat_ticks(path: &str, who: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("{who}: no {path}"))?;
    parse_stat_ticks(&stat).with_context(|| format!("{who}: {path} not understood: {stat:?}"))
}

/// CPU time of process `pid` so far, in clock ticks.
pub fn process_ticks(pid: Pid) -> anyhow::Result<u64> {
    read_stat_ticks(&format!("/proc/{pid}/stat"), &format!("process {pid}"))
}

/// CPU time of this process (the load generator) so far, in clock ticks.
pub fn own_ticks() -> anyhow::Result<u64> {
    read_stat_ticks("/proc/self/stat", "the load generator")
}

/// Resident memory of process `pid` now, in bytes.
pub fn rss_bytes(pid: Pid) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("process {pid}: no {path}"))?;
    parse_vm_rss_bytes(&status).with_context(|| format!("process {pid}: no VmRSS in {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line of `/proc/PID/stat` with the command name replaced by `name`; utime 1234,
    /// stime 56.
    fn stat_line(name: &str) -> String {
        format!(
            "4242 ({name}) S 1 4242 4242 0 -1 4194560 2179 0 0 0 1234 56 0 0 20 0 9 0 \
             305190 1620000768 3338 18446744073709551615 1 1 0 0 0 0 0 4096 17410 0 0 0 17 1 \
             0 0 0 0 0"
        )
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime_whatever_the_name() {
        for name in ["auction-node", "a b c", "x) S 1 2 3 (y", "((", ")", ""] {
            assert_eq!(
                parse_stat_ticks(&stat_line(name)),
                Some(1_290),
                "name {name:?}"
            );
        }
        assert_eq!(parse_stat_ticks("4242 (cut) S 1 2"), None, "too short");
        assert_eq!(parse_stat_ticks("no parentheses 1 2 3"), None);
        let garbled = stat_line("n").replace(" 1234 ", " twelve ");
        assert_eq!(parse_stat_ticks(&garbled), None);
    }

    #[test]
    fn rss_is_read_in_kilobytes() {
        let status = "Name:\tauction-node\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss_bytes(status), Some(51_200 * 1_024));
        assert_eq!(parse_vm_rss_bytes("Name:\tkthreadd\nThreads:\t1\n"), None);
        assert_eq!(parse_vm_rss_bytes("VmRSS:\t12 MB\n"), None, "unknown unit");
    }

    fn auxv(pairs: &[(usize, usize)]) -> Vec<u8> {
        pairs
            .iter()
            .flat_map(|(key, value)| [key.to_ne_bytes(), value.to_ne_bytes()])
            .flatten()
            .collect()
    }

    #[test]
    fn the_clock_tick_comes_from_the_auxiliary_vector() {
        assert_eq!(
            parse_auxv_clock_ticks(&auxv(&[(6, 4096), (17, 250), (0, 0)])),
            Some(250)
        );
        assert_eq!(
            parse_auxv_clock_ticks(&auxv(&[(6, 4096), (0, 0), (17, 250)])),
            None,
            "nothing after the end marker"
        );
        assert_eq!(parse_auxv_clock_ticks(&auxv(&[(17, 0)])), None);
        assert_eq!(parse_auxv_clock_ticks(&[1, 2, 3]), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let ticks_per_second = clock_ticks_per_second();
        assert!(
            (1..=10_000).contains(&ticks_per_second),
            "{ticks_per_second}"
        );
        assert!(own_ticks().is_ok());
        assert!(process_ticks(std::process::id()).is_ok());
        assert!(rss_bytes(std::process::id()).expect("our RSS") > 0);
        // Pid numbers stop well below this (the kernel's limit is 2^22).
        let gone = process_ticks(u32::MAX).expect_err("no such process");
        assert!(gone.to_string().contains("process 4294967295"), "{gone}");
    }
}
