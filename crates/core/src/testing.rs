//! Native test adapters for core's ports: a settable clock and a seeded,
//! deterministic random source. Enabled with the `testing` feature.

use std::cell::{Cell, RefCell};

use chrono::{DateTime, Duration, Utc};

use crate::ports::{Clock, Randomness, RandomnessUnavailable};

/// A clock that only moves when a test moves it.
#[derive(Debug)]
pub struct FakeClock(Cell<DateTime<Utc>>);

impl FakeClock {
    pub fn at(now: DateTime<Utc>) -> Self {
        FakeClock(Cell::new(now))
    }

    pub fn advance(&self, by: Duration) {
        self.0.set(self.0.get() + by);
    }

    pub fn set(&self, now: DateTime<Utc>) {
        self.0.set(now);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.get()
    }
}

/// Deterministic bytes from a seed (SplitMix64). Not secure: tests only.
#[derive(Debug)]
pub struct SeededRandomness(RefCell<u64>);

impl SeededRandomness {
    pub fn new(seed: u64) -> Self {
        SeededRandomness(RefCell::new(seed))
    }
}

impl Randomness for SeededRandomness {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomnessUnavailable> {
        let mut state = self.0.borrow_mut();
        for chunk in buf.chunks_mut(8) {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// A random source that always fails, to test the error path.
#[derive(Debug, Default)]
pub struct NoRandomness;

impl Randomness for NoRandomness {
    fn fill(&self, _buf: &mut [u8]) -> Result<(), RandomnessUnavailable> {
        Err(RandomnessUnavailable)
    }
}

/// An in-memory cache for tests (TTL is not modelled: entries stay).
#[derive(Debug, Default)]
pub struct MemoryCache(RefCell<std::collections::HashMap<String, String>>);

impl MemoryCache {
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
}

impl crate::ports::KvCache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<String>, crate::ports::CacheError> {
        Ok(self.0.borrow().get(key).cloned())
    }
    async fn put(
        &self,
        key: &str,
        value: &str,
        _ttl_seconds: u32,
    ) -> Result<(), crate::ports::CacheError> {
        self.0.borrow_mut().insert(key.to_owned(), value.to_owned());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), crate::ports::CacheError> {
        self.0.borrow_mut().remove(key);
        Ok(())
    }
}

/// A [`Sleep`](crate::ports::Sleep) that returns at once and records each
/// requested wait, so tests can assert a backoff without waiting it out.
#[derive(Debug, Default)]
pub struct RecordingSleep(RefCell<Vec<u64>>);

impl RecordingSleep {
    pub fn waits(&self) -> Vec<u64> {
        self.0.borrow().clone()
    }
}

impl crate::ports::Sleep for RecordingSleep {
    async fn sleep_ms(&self, ms: u64) {
        self.0.borrow_mut().push(ms);
    }
}

/// A [`Metrics`](crate::ports::Metrics) port that keeps every data point,
/// so tests can assert what a request would have written.
#[derive(Debug, Default)]
pub struct RecordingMetrics(RefCell<Vec<crate::observe::ToolCallPoint>>);

impl RecordingMetrics {
    pub fn points(&self) -> Vec<crate::observe::ToolCallPoint> {
        self.0.borrow().clone()
    }
}

impl crate::ports::Metrics for RecordingMetrics {
    fn record(&self, point: &crate::observe::ToolCallPoint) {
        self.0.borrow_mut().push(point.clone());
    }
}
