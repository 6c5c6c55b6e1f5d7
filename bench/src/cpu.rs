//! CPU time of the server processes under test, read from `/proc` (Linux), so that a workload
//! can report server CPU per operation beside its throughput: on a machine whose cores are
//! shared by every node of a loopback cluster, CPU per write is what bounds a three-node
//! cluster against one node.

use anyhow::Context;

/// Clock ticks per second of `utime` and `stime` in `/proc/<pid>/stat`: USER_HZ, which Linux
/// fixes at 100 for user space on every mainstream architecture.
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds used so far by each of the processes `pids` (all their
/// threads), in the same order.
pub fn seconds_each(pids: &[u32]) -> anyhow::Result<Vec<f64>> {
    pids.iter()
        .map(|pid| {
            let path = format!("/proc/{pid}/stat");
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
            let ticks = stat_ticks(&text).with_context(|| format!("{path} is not in the expected format"))?;
            Ok(ticks as f64 / USER_HZ)
        })
        .collect()
}

/// CPU used by a set of processes during a workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUsed {
    /// All of them together, seconds.
    pub total: f64,
    /// The busiest one alone, seconds: what bounds throughput when every process has cores of
    /// its own (a cluster on separate machines), rather than sharing them.
    pub busiest: f64,
}

impl CpuUsed {
    /// What each process used between two [`seconds_each`] readings of the same pids.
    pub fn between(before: &[f64], after: &[f64]) -> Self {
        let used = || before.iter().zip(after).map(|(b, a)| a - b);
        Self { total: used().sum(), busiest: used().fold(0.0, f64::max) }
    }
}

/// `utime + stime` of one `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted from the last `)`: the token after
/// it is field 3 (state), which puts utime (field 14) at index 11 and stime at index 12.
fn stat_ticks(stat: &str) -> anyhow::Result<u64> {
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).context("no ')' after the command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        fields.get(i).context("line too short")?.parse::<u64>().context("not a number")
    };
    Ok(field(11)? + field(12)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_found_after_the_command_name() {
        let line = "4242 (meri dian) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(stat_ticks(line).ok(), Some(1234 + 567));
        assert!(stat_ticks("4242 (x) S 1 2").is_err());
    }

    #[test]
    fn the_busiest_process_and_the_total_are_told_apart() {
        let used = CpuUsed::between(&[1.0, 5.0, 2.0], &[1.5, 7.0, 2.25]);
        assert_eq!(used, CpuUsed { total: 2.75, busiest: 2.0 });
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let me = std::process::id();
        assert!(seconds_each(&[me]).is_ok_and(|s| s.len() == 1 && s[0] >= 0.0));
        assert!(seconds_each(&[u32::MAX]).is_err());
    }
}
