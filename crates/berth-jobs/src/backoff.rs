//! Exponential backoff with jitter between attempts.

use std::time::Duration;

/// Exponential backoff with "equal jitter": before attempt `n + 1` (after `n` failed
/// attempts) the job waits `d / 2 + jitter × d / 2`, where `d = min(max, base × 2^(n-1))`
/// and `jitter` is uniform in [0, 1). Half the delay is guaranteed (so retries of many
/// jobs that failed together still back off), half is random (so they do not retry in
/// lockstep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay `d` after the first failure.
    pub base: Duration,
    /// The largest `d`.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling up to 1 hour.
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The undithered delay `d` after `failed` failed attempts (≥ 1; 0 counts as 1).
    pub fn ceiling(&self, failed: u32) -> Duration {
        let exp = failed.max(1).saturating_sub(1).min(62);
        let d = self.base.saturating_mul(1u32 << exp.min(31));
        // Past 2^31 the multiplication already saturated or exceeds any sane max.
        d.min(self.max)
    }

    /// The delay after `failed` failed attempts with `jitter` in [0, 1) (values outside
    /// are clamped).
    pub fn delay(&self, failed: u32, jitter: f64) -> Duration {
        let d = self.ceiling(failed);
        let j = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        d / 2 + d.mul_f64(j) / 2
    }
}
