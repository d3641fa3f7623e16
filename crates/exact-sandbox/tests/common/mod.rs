//! Shared set-up for the sandbox's integration tests: a running sandbox,
//! the OAuth flow through its login page, and a client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use boekhouding_core::crypto::Secret;
use boekhouding_core::exact::oauth::{self, ExactApp, TokenSet};
use boekhouding_core::ports::{HttpMethod, HttpRequest, HttpResponse, HttpTransport};
use boekhouding_core::testing::FakeClock;
use chrono::{DateTime, Duration, Utc};
use exact_sandbox::transport::BlockingTransport;
use exact_sandbox::{Sandbox, SandboxConfig};
use futures::executor::block_on;

pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

#[derive(Debug)]
pub struct Env {
    pub sandbox: Sandbox,
    pub http: BlockingTransport,
    pub clock: FakeClock,
}

pub fn start(config: SandboxConfig) -> Env {
    let sandbox = Sandbox::start(config).unwrap();
    Env {
        sandbox,
        http: BlockingTransport::new(std::time::Duration::from_secs(5)),
        clock: FakeClock::at(Utc::now()),
    }
}

pub fn default_env() -> Env {
    start(SandboxConfig::default())
}

impl Env {
    pub fn app(&self) -> ExactApp {
        ExactApp {
            base_url: self.sandbox.base_url().to_owned(),
            client_id: self.sandbox.client_id().to_owned(),
            client_secret: Secret::new(self.sandbox.client_secret()),
            redirect_uri: REDIRECT.to_owned(),
        }
    }

    pub fn send(
        &self,
        method: HttpMethod,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> HttpResponse {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.sandbox.base_url())
        };
        block_on(
            self.http.send(HttpRequest {
                method,
                url,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body: body.map(str::to_owned),
            }),
        )
        .unwrap()
    }

    pub fn admin(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self.send(
            HttpMethod::Post,
            path,
            &[("Content-Type", "application/json")],
            Some(&body.to_string()),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// Logs in on the sandbox's page and returns the code from the redirect.
    pub fn login(&self, username: &str, password: &str) -> String {
        let app = self.app();
        let page = self.send(
            HttpMethod::Get,
            &oauth::authorize_url(&app, "st4te")[self.sandbox.base_url().len()..],
            &[],
            None,
        );
        assert_eq!(page.status, 200);
        assert!(page.body.contains("name=\"password\""));
        exact_sandbox::login::sign_in(&self.http, &app, username, password, "st4te").unwrap()
    }

    pub fn connect(&self, username: &str) -> TokenSet {
        let code = self.login(username, username);
        block_on(oauth::exchange_code(
            &self.http,
            &self.app(),
            &code,
            self.clock_now(),
        ))
        .unwrap()
    }

    /// The sandbox's own clock (which admin `clock` moves).
    pub fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now_value()
    }

    pub fn advance(&self, secs: i64) {
        self.admin(
            "/__admin/clock",
            serde_json::json!({"advance_seconds": secs}),
        );
        self.clock.advance(Duration::seconds(secs));
    }

    pub fn token_requests(&self, grant: &str) -> usize {
        self.sandbox
            .requests()
            .iter()
            .filter(|r| r.path == "/api/oauth2/token" && r.grant_type.as_deref() == Some(grant))
            .count()
    }
}

pub trait NowValue {
    fn now_value(&self) -> DateTime<Utc>;
}

impl NowValue for FakeClock {
    fn now_value(&self) -> DateTime<Utc> {
        boekhouding_core::ports::Clock::now(self)
    }
}

/// Fails the statement that stores refreshed tokens while
/// `failures_left` lasts (the database failing right after Exact rotated).
pub struct FlakyStore<'a> {
    pub inner: &'a boekhouding_sqlite::SqliteDb,
    pub failures_left: std::cell::Cell<u32>,
}

impl boekhouding_core::storage::SqlExecutor for FlakyStore<'_> {
    async fn query(
        &self,
        stmt: boekhouding_core::storage::Statement,
    ) -> Result<Vec<boekhouding_core::storage::Row>, boekhouding_core::storage::StorageError> {
        self.inner.query(stmt).await
    }
    async fn execute(
        &self,
        stmt: boekhouding_core::storage::Statement,
    ) -> Result<boekhouding_core::storage::Executed, boekhouding_core::storage::StorageError> {
        if stmt.sql.contains("SET access_token_sealed") && self.failures_left.get() > 0 {
            self.failures_left.set(self.failures_left.get() - 1);
            return Err(boekhouding_core::storage::StorageError::Unavailable(
                "injected after rotation".into(),
            ));
        }
        self.inner.execute(stmt).await
    }
    async fn batch(
        &self,
        stmts: Vec<boekhouding_core::storage::Statement>,
    ) -> Result<Vec<boekhouding_core::storage::Executed>, boekhouding_core::storage::StorageError>
    {
        self.inner.batch(stmts).await
    }
    async fn batch_query(
        &self,
        stmts: Vec<boekhouding_core::storage::Statement>,
    ) -> Result<Vec<Vec<boekhouding_core::storage::Row>>, boekhouding_core::storage::StorageError>
    {
        self.inner.batch_query(stmts).await
    }
}
