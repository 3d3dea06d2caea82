//! The time, both ways the machines need it: a monotonic instant for timers and rate limits,
//! and Unix seconds for what outlives a process (tickets, ACL expiry, stored records).
//!
//! Machines take a [`Clock`] as an argument and never read one; a shell makes it with
//! [`Clock::now`] at the moment an input arrives, and tests build it by hand.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Now, both ways.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Monotonic now.
    pub at: Instant,
    /// Unix seconds now.
    pub unix: u64,
}

impl Clock {
    /// The system's clocks now (for shells; a clock set before 1970 reads as 0).
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}
