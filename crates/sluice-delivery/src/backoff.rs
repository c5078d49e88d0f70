//! How long to wait before the next attempt: exponential backoff with full jitter, never
//! sooner than the tool's `Retry-After`.

use std::time::Duration;

/// The retry schedule of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first wait.
    pub base: Duration,
    /// The largest ceiling of any wait.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The ceiling of the wait after `failures` failed attempts (1 after the first failure):
    /// `base × 2^(failures−1)`, at most `cap`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.cap)
    }

    /// The wait after `failures` failed attempts: uniform in `[0, ceiling]` ("full jitter"),
    /// raised to `retry_after` when the tool asked for more. `unit` is a uniform random number
    /// in `[0, 1)`.
    pub fn wait(&self, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let jittered = self.ceiling(failures).mul_f64(unit.clamp(0.0, 1.0));
        match retry_after {
            Some(after) => jittered.max(after),
            None => jittered,
        }
    }
}

/// A uniform random number in `[0, 1)` from the operating system (zero if it fails, which only
/// makes the wait shorter).
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.0;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let ceilings: Vec<u64> = (1..=6).map(|n| backoff.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.ceiling(1_000), Duration::from_secs(10));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let backoff = Backoff::default();
        let wait = backoff.wait(1, Some(Duration::from_secs(30)), 0.99);
        assert_eq!(wait, Duration::from_secs(30));
        let wait = backoff.wait(20, Some(Duration::from_secs(1)), 0.5);
        assert_eq!(wait, Duration::from_secs(150), "half the 300 s cap");
    }

    #[test]
    fn random_units_are_spread_over_zero_to_one() {
        let samples: Vec<f64> = (0..1_000).map(|_| random_unit()).collect();
        assert!(samples.iter().all(|u| (0.0..1.0).contains(u)));
        let low = samples.iter().filter(|u| **u < 0.5).count();
        assert!((350..650).contains(&low), "{low} of 1000 below one half");
    }

    proptest! {
        #[test]
        fn waits_stay_within_jitter_bounds(failures in 1u32..100, unit in 0.0f64..1.0, after in proptest::option::of(0u64..100_000)) {
            let backoff = Backoff::default();
            let retry_after = after.map(Duration::from_millis);
            let wait = backoff.wait(failures, retry_after, unit);
            let ceiling = backoff.ceiling(failures);
            prop_assert!(wait <= ceiling.max(retry_after.unwrap_or_default()));
            if let Some(after) = retry_after {
                prop_assert!(wait >= after);
            }
        }
    }
}
