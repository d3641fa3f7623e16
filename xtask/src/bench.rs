//! Native micro-benchmarks of core's hot paths. Figures, not assertions:
//! they are printed and written to `bench-results/bench.json`.

use std::time::Instant;

use anyhow::Result;
use boekhouding_core::crypto::{SealBinding, Secret, TokenKeyring, hash_credential};
use boekhouding_core::lifecycle::{RefreshFailure, TokenEvent, TokenState, transition};
use boekhouding_core::plan::Limit;
use boekhouding_core::ports::{Randomness, RandomnessUnavailable};
use boekhouding_core::storage::usage::{self, UsageMonth};
use boekhouding_core::storage::users;
use boekhouding_sqlite::SqliteDb;
use chrono::{TimeZone, Utc};
use futures::executor::block_on;
use serde::Serialize;

/// OS randomness for benchmarks and seeding (core's fakes are
/// deterministic).
#[derive(Debug, Clone, Copy)]
pub struct OsRandom;

impl Randomness for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomnessUnavailable> {
        getrandom::fill(buf).map_err(|_| RandomnessUnavailable)
    }
}

#[derive(Debug, Serialize)]
pub struct Figure {
    pub what: &'static str,
    pub iterations: u32,
    pub per_second: f64,
    pub mean_us: f64,
}

fn measure(
    what: &'static str,
    iterations: u32,
    mut f: impl FnMut(u32) -> Result<()>,
) -> Result<Figure> {
    let start = Instant::now();
    for i in 0..iterations {
        f(i)?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Figure {
        what,
        iterations,
        per_second: f64::from(iterations) / secs,
        mean_us: secs * 1e6 / f64::from(iterations),
    })
}

pub fn core_throughput() -> Result<Vec<Figure>> {
    let ring = TokenKeyring::from_config(
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = Secret::new("x".repeat(600));
    let binding = SealBinding::new("connections", "0123456789abcdef", "refresh_token");
    let sealed = ring
        .seal(&OsRandom, &token, &binding)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Utc
        .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .unwrap_or_default();
    let db = SqliteDb::migrated().map_err(|e| anyhow::anyhow!("{e}"))?;
    let user = block_on(users::upsert_by_email(
        &db,
        &OsRandom,
        "bench@example.nl",
        None,
        now,
    ))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let month = UsageMonth::of(now);

    Ok(vec![
        measure("seal an Exact token (AES-256-GCM, 600 B)", 20_000, |_| {
            ring.seal(&OsRandom, &token, &binding)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}"))
        })?,
        measure("open an Exact token", 20_000, |_| {
            ring.open(&sealed, &binding)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}"))
        })?,
        measure("hash an API key (SHA-256)", 200_000, |i| {
            std::hint::black_box(hash_credential(&format!("pmjb_{i:064x}")));
            Ok(())
        })?,
        measure("token lifecycle transition", 1_000_000, |_| {
            let ev = TokenEvent::RefreshFailed(RefreshFailure::Transient("503".into()));
            std::hint::black_box(transition(&TokenState::active(), &ev, now));
            Ok(())
        })?,
        measure("meter a tool call (SQLite upsert)", 20_000, |_| {
            block_on(usage::try_count_call(
                &db,
                &user.id,
                month,
                Limit::Unlimited,
            ))
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}"))
        })?,
    ])
}

pub fn print(figures: &[Figure]) {
    println!("| core operation | iterations | per second | mean |");
    println!("|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {} | {:.0} | {:.2} µs |",
            f.what, f.iterations, f.per_second, f.mean_us
        );
    }
    println!();
}
