//! Time and randomness on the Workers runtime. `SystemTime::now` panics on
//! wasm32, so the clock reads JavaScript's `Date.now()`; randomness comes
//! from the runtime's CSPRNG through getrandom's `wasm_js` backend.

use boekhouding_core::ports::{Clock, Randomness, RandomnessUnavailable};
use chrono::{DateTime, TimeZone, Utc};

/// The runtime clock. In production it only advances across I/O, which is
/// fine for token expiry and metering.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now(&self) -> DateTime<Utc> {
        let ms = js_sys::Date::now() as i64;
        Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
    }
}

/// A scheduled run's clock: the time the run was scheduled for, moving
/// forward with the wall clock, and never behind the wall clock. In
/// production the two agree (give or take the trigger's delay); locally a
/// trigger may name a future time (`/cdn-cgi/handler/scheduled?time=`),
/// which is how tests run the cron days ahead without waiting.
#[derive(Debug, Clone, Copy)]
pub struct ScheduledClock {
    scheduled: DateTime<Utc>,
    wall_start: DateTime<Utc>,
}

impl ScheduledClock {
    /// From `ScheduledEvent::schedule()` (epoch milliseconds).
    pub fn from_epoch_ms(ms: f64) -> Self {
        let wall_start = WorkerClock.now();
        let scheduled = Utc
            .timestamp_millis_opt(ms as i64)
            .single()
            .unwrap_or(wall_start);
        ScheduledClock {
            scheduled,
            wall_start,
        }
    }
}

impl Clock for ScheduledClock {
    fn now(&self) -> DateTime<Utc> {
        let wall = WorkerClock.now();
        (self.scheduled + (wall - self.wall_start)).max(wall)
    }
}

/// The runtime's cryptographic random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerRandomness;

impl Randomness for WorkerRandomness {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomnessUnavailable> {
        getrandom::fill(buf).map_err(|_| RandomnessUnavailable)
    }
}

/// Waits on the runtime's timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerSleep;

impl boekhouding_core::ports::Sleep for WorkerSleep {
    async fn sleep_ms(&self, ms: u64) {
        worker::Delay::from(std::time::Duration::from_millis(ms)).await;
    }
}

/// Runs `work` inside the request's `ctx.wait_until` and awaits its
/// output: if the client disconnects, the runtime cancels the request's
/// own work but keeps `wait_until` work alive until it finishes, so work
/// that must not be cut in half (storing tokens Exact has just rotated)
/// completes either way. `None` only if the work was dropped unfinished.
pub async fn run_to_completion<T: 'static>(
    ctx: &worker::Context,
    work: impl std::future::Future<Output = T> + 'static,
) -> Option<T> {
    let (tx, rx) = futures::channel::oneshot::channel();
    ctx.wait_until(async move {
        // The receiver is gone when the client left; the work is done
        // all the same.
        let _ = tx.send(work.await);
    });
    rx.await.ok()
}
