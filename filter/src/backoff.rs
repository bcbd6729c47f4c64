//! Retry timing for the singleton's calls to the control plane: exponential back-off with
//! jitter, and log throttling so an outage gives a few warnings, not one per attempt. Pure
//! functions of their inputs (time and entropy come from the caller), so they are unit-tested.

/// First delay after a failure.
pub const INITIAL_MS: u64 = 250;
/// Longest delay between two attempts.
pub const MAX_MS: u64 = 10_000;
/// While failures go on, one warning per this many milliseconds at most.
pub const LOG_EVERY_MS: u64 = 30_000;

/// Exponential back-off: the n-th consecutive failure waits a random time in
/// `[d/2, d]` with `d = min(max, initial · 2ⁿ)` ("equal jitter"), so Envoys that lost the
/// control plane together do not come back in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    failures: u32,
    /// Failures of a run answered with no delay (failover to another endpoint).
    free: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL_MS, MAX_MS)
    }
}

impl Backoff {
    pub fn new(initial_ms: u64, max_ms: u64) -> Backoff {
        Backoff {
            initial_ms: initial_ms.max(1),
            max_ms: max_ms.max(initial_ms.max(1)),
            failures: 0,
            free: 0,
        }
    }

    /// The first `free` failures of a run are retried at once, then back-off as usual up to
    /// `max_ms`.
    pub fn failover(free: u32, max_ms: u64) -> Backoff {
        Backoff {
            free,
            ..Backoff::new(INITIAL_MS, max_ms)
        }
    }

    /// Consecutive failures so far.
    #[cfg(test)]
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure starts from the initial delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Records a failure and returns how long to wait before the next attempt, never more
    /// than `cap_ms`. `entropy` is any varying number (the host clock's nanoseconds).
    pub fn fail(&mut self, entropy: u64, cap_ms: u64) -> u64 {
        if self.failures < self.free {
            self.failures += 1;
            return 0;
        }
        let exponent = self.failures - self.free;
        let ceiling = self
            .initial_ms
            .saturating_mul(1u64 << exponent.min(32))
            .min(self.max_ms)
            .min(cap_ms.max(1));
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        half + mix(entropy) % (ceiling - half + 1)
    }
}

/// SplitMix64: spreads clock nanoseconds (often coarse, with low bits zero) over all bits.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Decides which failures of a run are logged: the first, then one per [`LOG_EVERY_MS`],
/// each saying how many were not logged in between.
#[derive(Debug, Default, Clone)]
pub struct FailureLog {
    /// When the last warning was written (`None`: nothing is failing).
    last_logged_ms: Option<u64>,
    unlogged: u64,
    total: u64,
}

impl FailureLog {
    /// A failure at `now_ms`: `Some(n)` means log it now, mentioning `n` failures not logged
    /// since the last warning.
    pub fn failed(&mut self, now_ms: u64) -> Option<u64> {
        self.total += 1;
        match self.last_logged_ms {
            Some(last) if now_ms.saturating_sub(last) < LOG_EVERY_MS => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.last_logged_ms = Some(now_ms);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }

    /// A success: returns how many failures the run that just ended had (0 when none).
    pub fn succeeded(&mut self) -> u64 {
        self.last_logged_ms = None;
        self.unlogged = 0;
        std::mem::take(&mut self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_with_jitter() {
        let mut b = Backoff::default();
        let mut ceilings = Vec::new();
        for i in 0..10u64 {
            let d = b.fail(i * 7919, u64::MAX);
            let ceiling = (INITIAL_MS << i).min(MAX_MS);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "failure {i}: {d} outside [{}, {ceiling}]",
                ceiling / 2
            );
            ceilings.push(ceiling);
        }
        assert_eq!(ceilings[..4], [250, 500, 1000, 2000]);
        assert_eq!(*ceilings.last().unwrap(), MAX_MS);
        assert_eq!(b.failures(), 10);
    }

    #[test]
    fn jitter_varies_with_entropy() {
        let delays: std::collections::HashSet<u64> = (0..50u64)
            .map(|n| Backoff::default().fail(n * 1_000_000, u64::MAX))
            .collect();
        assert!(delays.len() > 10, "jitter barely varies: {delays:?}");
    }

    #[test]
    fn reset_starts_over_and_cap_bounds_the_delay() {
        let mut b = Backoff::default();
        for _ in 0..20 {
            b.fail(1, u64::MAX);
        }
        // Never overflows, however long the outage.
        assert!(b.fail(3, u64::MAX) <= MAX_MS);
        assert!(b.fail(3, 1000) <= 1000);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.fail(5, u64::MAX) <= INITIAL_MS);
    }

    #[test]
    fn failover_retries_at_once_then_backs_off_to_its_own_maximum() {
        let mut b = Backoff::failover(1, 2_000);
        assert_eq!(
            b.fail(1, u64::MAX),
            0,
            "the first failure of a run fails over at once"
        );
        let first = b.fail(2, u64::MAX);
        assert!((INITIAL_MS / 2..=INITIAL_MS).contains(&first), "{first}");
        for i in 0..20 {
            assert!(b.fail(i, u64::MAX) <= 2_000);
        }
        b.reset();
        assert_eq!(b.fail(3, u64::MAX), 0, "a new run fails over at once again");
    }

    #[test]
    fn failure_log_warns_first_then_once_per_period() {
        let mut log = FailureLog::default();
        assert_eq!(log.failed(1_000), Some(0));
        for t in 1..20 {
            assert_eq!(log.failed(1_000 + t * 1_000), None);
        }
        assert_eq!(log.failed(1_000 + LOG_EVERY_MS), Some(19));
        assert_eq!(log.succeeded(), 21);
        assert_eq!(log.succeeded(), 0);
        // A new outage warns at once.
        assert_eq!(log.failed(40_000), Some(0));
    }
}
