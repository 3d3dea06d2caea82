//! Portico's simulations and benchmarks: each is a binary under `src/bin/` that prints
//! figures (see docs/performance.md for the commands and recorded results).
//!
//! - `media_bench`: per-stage media costs and end-to-end fps/latency over loopback.
//! - `signal_load`: N simulated hosts registering and heartbeating against a real
//!   `portico-signal` process, M lookups per second; prints registrations/s, lookup
//!   latency percentiles and server memory per registered host.

pub mod desktop;

/// Percentile of sorted samples (nearest rank); `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Resident memory of a process in KiB, from `/proc/PID/status` (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
