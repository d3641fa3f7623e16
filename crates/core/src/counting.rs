//! Counting what costs: a wrapper around an effect port (the SQL executor,
//! the HTTP transport) that counts its round trips, and for SQL the
//! statements they carried, so a cron run or a request can report its cost.
//! It can also wait a fixed time before each database round trip, which is
//! how a local benchmark imitates a database far away (`D1_DELAY_MS`).

use std::cell::Cell;

use crate::ports::{
    BinaryResponse, HttpRequest, HttpResponse, HttpTransport, Sleep, TransportError,
};
use crate::storage::{Executed, Row, SqlExecutor, Statement, StorageError};

/// The sleep of a wrapper that never waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelay;

impl Sleep for NoDelay {
    async fn sleep_ms(&self, _ms: u64) {}
}

/// Counts the calls through an effect: one per `query`, `execute`,
/// `batch` or `batch_query` (each is one round trip to the database) or
/// per HTTP request; for SQL also the statements sent.
#[derive(Debug)]
pub struct Counting<T, S = NoDelay> {
    inner: T,
    round_trips: Cell<u32>,
    statements: Cell<u32>,
    sleep: S,
    delay_ms: u64,
}

impl<T> Counting<T> {
    pub fn new(inner: T) -> Self {
        Counting::with_delay(inner, NoDelay, 0)
    }
}

impl<T, S> Counting<T, S> {
    /// A wrapper that waits `delay_ms` (through `sleep`) before each
    /// database round trip; 0 never waits.
    pub fn with_delay(inner: T, sleep: S, delay_ms: u64) -> Self {
        Counting {
            inner,
            round_trips: Cell::new(0),
            statements: Cell::new(0),
            sleep,
            delay_ms,
        }
    }

    /// Round trips (database) or requests (HTTP) so far.
    pub fn calls(&self) -> u32 {
        self.round_trips.get()
    }

    /// Statements sent to the database so far (a batch counts each).
    pub fn statements(&self) -> u32 {
        self.statements.get()
    }

    pub fn inner(&self) -> &T {
        &self.inner
    }

    fn bump(&self, statements: usize) {
        self.round_trips
            .set(self.round_trips.get().saturating_add(1));
        let n = u32::try_from(statements).unwrap_or(u32::MAX);
        self.statements.set(self.statements.get().saturating_add(n));
    }
}

impl<T, S: Sleep> Counting<T, S> {
    async fn round_trip(&self, statements: usize) {
        self.bump(statements);
        if self.delay_ms > 0 {
            self.sleep.sleep_ms(self.delay_ms).await;
        }
    }
}

impl<T: SqlExecutor, S: Sleep> SqlExecutor for Counting<T, S> {
    async fn query(&self, stmt: Statement) -> Result<Vec<Row>, StorageError> {
        self.round_trip(1).await;
        self.inner.query(stmt).await
    }
    async fn execute(&self, stmt: Statement) -> Result<Executed, StorageError> {
        self.round_trip(1).await;
        self.inner.execute(stmt).await
    }
    async fn batch(&self, stmts: Vec<Statement>) -> Result<Vec<Executed>, StorageError> {
        self.round_trip(stmts.len()).await;
        self.inner.batch(stmts).await
    }
    async fn batch_query(&self, stmts: Vec<Statement>) -> Result<Vec<Vec<Row>>, StorageError> {
        self.round_trip(stmts.len()).await;
        self.inner.batch_query(stmts).await
    }
}

impl<T: HttpTransport, S> HttpTransport for Counting<T, S> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.bump(0);
        self.inner.send(request).await
    }
    async fn send_binary(
        &self,
        request: HttpRequest,
        max_bytes: usize,
    ) -> Result<BinaryResponse, TransportError> {
        self.bump(0);
        self.inner.send_binary(request, max_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::NoDatabase;

    /// Records the waits it was asked for, without waiting.
    #[derive(Default)]
    struct Waits(Cell<u64>);
    impl Sleep for Waits {
        async fn sleep_ms(&self, ms: u64) {
            self.0.set(self.0.get() + ms);
        }
    }

    #[test]
    fn counts_round_trips_and_statements_and_waits_per_round_trip() {
        let db = Counting::with_delay(NoDatabase, Waits::default(), 20);
        let stmt = || Statement::new("SELECT 1", vec![]);
        futures_lite(async {
            let _ = db.query(stmt()).await;
            let _ = db.batch(vec![stmt(), stmt(), stmt()]).await;
            let _ = db.batch_query(vec![stmt(), stmt()]).await;
        });
        assert_eq!((db.calls(), db.statements()), (3, 6));
        assert_eq!(db.sleep.0.get(), 60, "one delay per round trip");
        let plain = Counting::new(&NoDatabase);
        futures_lite(async {
            let _ = plain.execute(stmt()).await;
        });
        assert_eq!((plain.calls(), plain.statements()), (1, 1));
    }

    /// Polls a future that never waits on anything to completion.
    fn futures_lite(f: impl std::future::Future<Output = ()>) {
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        loop {
            if f.as_mut().poll(&mut cx).is_ready() {
                return;
            }
        }
    }
}
