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
