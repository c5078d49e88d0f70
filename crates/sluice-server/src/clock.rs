//! The node's clock for time-driven work (retention sweeps, audience windows).

/// Wall-clock time that advances with tokio's clock: read once at start, then moved on by
/// the monotonic clock (which tests can pause and advance).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start_ms: i64,
    started: tokio::time::Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            wall_at_start_ms: sluice_spec::timestamp::now_ms(),
            started: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.wall_at_start_ms.saturating_add(elapsed)
    }
}
