//! A fixed-window counter per key (a client IP, a username): enough to stop a registration
//! flood or password guessing from one place; bounded in memory.

use std::collections::HashMap;
use std::sync::Mutex;

/// Keys tracked at most; past this, windows that ended are dropped first, then everything
/// (a flood of distinct keys resets the counts rather than growing without bound).
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct RateLimiter {
    per_window: u32,
    window_secs: i64,
    counts: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimiter {
    pub fn new(per_window: u32, window_secs: i64) -> RateLimiter {
        RateLimiter {
            per_window,
            window_secs: window_secs.max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` is over its limit now: `Some(seconds until it may try again)`.
    pub fn blocked(&self, key: &str, now: i64) -> Option<u64> {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (start, count) = counts.get(key).copied()?;
        let ends = start + self.window_secs;
        (now < ends && count >= self.per_window).then(|| (ends - now).max(1) as u64)
    }

    /// Counts one event for `key`; `Err(retry_after)` when that goes over the limit (the
    /// event must then be refused).
    pub fn hit(&self, key: &str, now: i64) -> Result<(), u64> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
            let window = self.window_secs;
            counts.retain(|_, (start, _)| now < *start + window);
            if counts.len() >= MAX_KEYS {
                counts.clear();
            }
        }
        let entry = counts.entry(key.to_string()).or_insert((now, 0));
        if now >= entry.0 + self.window_secs {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_window {
            return Err((entry.0 + self.window_secs - now).max(1) as u64);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_quota_per_window_and_is_told_when_to_retry() {
        let limit = RateLimiter::new(2, 60);
        assert_eq!(limit.hit("a", 1000), Ok(()));
        assert_eq!(limit.hit("a", 1001), Ok(()));
        assert_eq!(limit.blocked("a", 1002), Some(58));
        assert_eq!(limit.hit("a", 1002), Err(58));
        assert_eq!(limit.hit("b", 1002), Ok(()), "keys are independent");
        assert_eq!(limit.blocked("a", 1060), None, "the window ended");
        assert_eq!(limit.hit("a", 1060), Ok(()));
    }
}
