//! Wall-clock seconds without a host call per request. The root context sets the time on every
//! tick (1 s) and every verification sets it too; a request reads the cached value. Callers
//! that are within [`SLACK_SECONDS`] of a deadline read the real clock instead, and after
//! [`REFRESH_AFTER_USES`] cached reads the next one goes to the host, so a stalled tick cannot
//! keep an expired token alive.

use std::cell::Cell;

/// How close to a deadline the cached time is not trusted.
pub const SLACK_SECONDS: u64 = 3;
/// Cached reads between two real ones.
const REFRESH_AFTER_USES: u32 = 1024;

#[derive(Default)]
pub struct Clock {
    seconds: Cell<u64>,
    uses: Cell<u32>,
}

impl Clock {
    pub fn set(&self, seconds: u64) {
        self.seconds.set(seconds);
        self.uses.set(0);
    }

    /// The cached time, or `None` when it must be read from the host.
    pub fn cached(&self) -> Option<u64> {
        let uses = self.uses.get();
        let seconds = self.seconds.get();
        if seconds == 0 || uses >= REFRESH_AFTER_USES {
            return None;
        }
        self.uses.set(uses + 1);
        Some(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_clock_asks_for_the_host() {
        assert_eq!(Clock::default().cached(), None);
    }

    #[test]
    fn cached_reads_are_bounded() {
        let clock = Clock::default();
        clock.set(100);
        for _ in 0..REFRESH_AFTER_USES {
            assert_eq!(clock.cached(), Some(100));
        }
        assert_eq!(clock.cached(), None);
        clock.set(101);
        assert_eq!(clock.cached(), Some(101));
    }
}
