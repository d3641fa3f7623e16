//! Provisioning a local account against an Exact-compatible server (the
//! bundled sandbox by default): the real OAuth flow, core's onboarding
//! (tokens sealed as in production) written into wrangler's local D1, and
//! an API key. Used by `cargo xtask dev` and the end-to-end suite.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use boekhouding_core::crypto::{CREDENTIAL_BYTES, TokenKeyring};
use boekhouding_core::exact::oauth::ExactApp;
use boekhouding_core::onboarding;
use boekhouding_core::plan::Plan;
use boekhouding_core::ports::{Clock, Randomness};
use boekhouding_core::region::Region;
use boekhouding_core::storage::{administrations, api_keys, users};
use boekhouding_sqlite::SqliteDb;
use chrono::{DateTime, Utc};
use exact_sandbox::transport::BlockingTransport;
use futures::executor::block_on;

use crate::bench::OsRandom;

/// The machine clock (xtask is native; core never reads it itself).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Local secrets of one state directory, created once and reused.
#[derive(Debug, Clone)]
pub struct LocalSecrets {
    pub token_key: String,
    pub env_file: PathBuf,
}

/// The file in a state directory that holds the local `OPERATOR_TOKEN`.
pub const OPERATOR_TOKEN_FILE: &str = "operator-token";

/// Creates (or reads) `<state>/secrets.env` with a fresh AES key. The file
/// stays in the ignored state directory; wrangler loads it with
/// `--env-file`, so the key never appears on a command line or in logs.
/// `mail_api_key` is the local mail catcher's key (the sandbox's), if any.
pub fn local_secrets(
    state: &Path,
    exact_client_secret: &str,
    mail_api_key: Option<&str>,
) -> Result<LocalSecrets> {
    let env_file = state.join("secrets.env");
    let token_key = format!("1:{}", kept_random_hex(&state.join("token-key"), "1:")?);
    let portal_secret = kept_random_hex(&state.join("portal-secret"), "")?;
    // The operator's bearer token for `/health/deep`, read by the
    // end-to-end checks from `operator-token` (never printed).
    let operator_token = kept_random_hex(&state.join(OPERATOR_TOKEN_FILE), "")?;
    let mut vars = format!(
        "TOKEN_ENCRYPTION_KEY={token_key}\nEXACT_CLIENT_SECRET={exact_client_secret}\nPORTAL_SECRET={portal_secret}\nOPERATOR_TOKEN={operator_token}\n"
    );
    if let Some(k) = mail_api_key {
        vars.push_str(&format!("MAIL_API_KEY={k}\n"));
    }
    std::fs::write(&env_file, vars)?;
    Ok(LocalSecrets {
        token_key,
        env_file,
    })
}

/// 32 random bytes in hex, kept in `file` (written as `prefix` + hex) so
/// a state directory keeps its secrets across runs; returns the hex.
fn kept_random_hex(file: &Path, prefix: &str) -> Result<String> {
    if let Ok(kept) = std::fs::read_to_string(file) {
        return Ok(kept.trim().trim_start_matches(prefix).to_owned());
    }
    let mut raw = [0u8; CREDENTIAL_BYTES];
    OsRandom
        .fill(&mut raw)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hex = hex::encode(raw);
    std::fs::write(file, format!("{prefix}{hex}"))?;
    Ok(hex)
}

/// wrangler's local D1 file under a `--persist-to` directory.
pub fn local_d1_file(state: &Path) -> Result<PathBuf> {
    let dir = state.join("v3/d1/miniflare-D1DatabaseObject");
    let found = std::fs::read_dir(&dir)
        .with_context(|| format!("no local D1 in {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "sqlite") && !p.ends_with("metadata.sqlite"));
    found.with_context(|| format!("no local D1 database file in {}", dir.display()))
}

/// A provisioned local account.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub api_key: String,
    pub divisions: Vec<i64>,
}

/// Signs `username` in on an Exact-compatible server with a login form
/// like the sandbox's and returns the authorization code.
pub fn sandbox_login(
    http: &BlockingTransport,
    app: &ExactApp,
    username: &str,
    password: &str,
) -> Result<String> {
    exact_sandbox::login::sign_in(http, app, username, password, "dev")
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Keeps using the API key stored in `key_file` while it is valid, so
/// repeated `cargo xtask dev` runs keep one key; otherwise like
/// [`provision`].
pub fn provision_reusing_key(
    d1_file: &Path,
    key_file: &Path,
    token_key: &str,
    app: &ExactApp,
    code: &str,
    plan: Plan,
) -> Result<Account> {
    let existing = std::fs::read_to_string(key_file)
        .ok()
        .map(|k| k.trim().to_owned());
    let (mut account, user_id) = onboard(d1_file, token_key, app, code, plan)?;
    let db = SqliteDb::open(d1_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(k) = existing {
        let still_valid = block_on(api_keys::find_active_by_secret(&db, &k))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .is_some_and(|rec| rec.user_id == user_id);
        if still_valid {
            account.api_key = k;
            return Ok(account);
        }
    }
    account.api_key = issue_key(&db, &user_id, plan)?;
    std::fs::write(key_file, &account.api_key)?;
    Ok(account)
}

fn issue_key(db: &SqliteDb, user_id: &str, plan: Plan) -> Result<String> {
    let key = block_on(api_keys::create(
        db,
        &OsRandom,
        user_id,
        plan,
        "Local development",
        Utc::now(),
    ))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(key.issued.secret.expose().to_owned())
}

/// Core's onboarding into the local D1; the plan is set so every
/// administration can be switched on. Returns the account (without a key)
/// and the user id.
fn onboard(
    d1_file: &Path,
    token_key: &str,
    app: &ExactApp,
    code: &str,
    plan: Plan,
) -> Result<(Account, String)> {
    let db = SqliteDb::open(d1_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let keyring = TokenKeyring::from_config(token_key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = BlockingTransport::default();
    let done = block_on(onboarding::complete(
        &db,
        &http,
        &OsRandom,
        &SystemClock,
        &keyring,
        app,
        Region::Nl,
        code,
    ))
    .map_err(|e| anyhow::anyhow!("connecting to Exact failed: {e}"))?;
    if done.administrations.is_empty() {
        bail!("the Exact user has no administrations");
    }
    let now = Utc::now();
    block_on(users::set_plan(&db, &done.user.id, plan, now)).map_err(|e| anyhow::anyhow!("{e}"))?;
    for a in done.administrations.iter().filter(|a| !a.is_active) {
        block_on(administrations::set_active(
            &db,
            &done.user.id,
            &a.id,
            true,
            plan,
            now,
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let account = Account {
        email: done.user.email,
        api_key: String::new(),
        divisions: done
            .administrations
            .iter()
            .map(|a| a.division_code)
            .collect(),
    };
    Ok((account, done.user.id))
}

/// Completes onboarding with `code` into the local D1 and issues a new API
/// key.
pub fn provision(
    d1_file: &Path,
    token_key: &str,
    app: &ExactApp,
    code: &str,
    plan: Plan,
) -> Result<Account> {
    let (mut account, user_id) = onboard(d1_file, token_key, app, code, plan)?;
    let db = SqliteDb::open(d1_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    account.api_key = issue_key(&db, &user_id, plan)?;
    Ok(account)
}

/// A running local Exact (the sandbox) with a demo account connected to it
/// in the local D1 of `state`, and what the Workers need to reach it.
pub struct LocalExact {
    pub sandbox: exact_sandbox::Sandbox,
    pub secrets: LocalSecrets,
    pub account: Account,
    pub redirect_uri: String,
}

impl LocalExact {
    /// Starts the sandbox, signs the `demo` user in through its OAuth page
    /// and provisions the account. With `key_file`, an existing valid key
    /// is kept across runs.
    pub fn start(
        state: &Path,
        config: exact_sandbox::SandboxConfig,
        redirect_uri: String,
        plan: Plan,
        key_file: Option<&Path>,
    ) -> Result<Self> {
        let sandbox = exact_sandbox::Sandbox::start(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let secrets = local_secrets(state, sandbox.client_secret(), Some(sandbox.mail_api_key()))?;
        append_stripe_secrets(&secrets.env_file, &sandbox)?;
        let app = ExactApp {
            base_url: sandbox.base_url().to_owned(),
            client_id: sandbox.client_id().to_owned(),
            client_secret: boekhouding_core::crypto::Secret::new(sandbox.client_secret()),
            redirect_uri: redirect_uri.clone(),
        };
        let code = sandbox_login(&BlockingTransport::default(), &app, "demo", "demo")?;
        let d1 = local_d1_file(state)?;
        let account = match key_file {
            Some(f) => provision_reusing_key(&d1, f, &secrets.token_key, &app, &code, plan)?,
            None => provision(&d1, &secrets.token_key, &app, &code, plan)?,
        };
        Ok(LocalExact {
            sandbox,
            secrets,
            account,
            redirect_uri,
        })
    }

    /// The sandbox as an Exact app registration.
    pub fn app(&self) -> ExactApp {
        ExactApp {
            base_url: self.sandbox.base_url().to_owned(),
            client_id: self.sandbox.client_id().to_owned(),
            client_secret: boekhouding_core::crypto::Secret::new(self.sandbox.client_secret()),
            redirect_uri: self.redirect_uri.clone(),
        }
    }

    /// The plain variables the Workers need to reach the sandbox, as Exact,
    /// as the mail provider and as Stripe (secrets go through
    /// `secrets.env_file`).
    pub fn vars(&self) -> Vec<(&str, &str)> {
        let mut vars = vec![
            ("EXACT_CLIENT_ID", self.sandbox.client_id()),
            ("EXACT_BASE_URL", self.sandbox.base_url()),
            ("EXACT_REDIRECT_URI", self.redirect_uri.as_str()),
            ("MAIL_API_URL", self.sandbox.base_url()),
        ];
        vars.extend(stripe_vars(&self.sandbox));
        vars
    }
}

/// The local Stripe as xtask runs it: events go to the portal's webhook
/// endpoint on `portal_port`.
pub fn local_stripe(portal_port: u16) -> exact_sandbox::stripe::StripeConfig {
    exact_sandbox::stripe::StripeConfig {
        webhook_url: Some(format!("http://127.0.0.1:{portal_port}/stripe/webhook")),
        ..exact_sandbox::stripe::StripeConfig::default()
    }
}

/// The local Stripe's price ids as the product reads them: the first
/// configured price is starter, the second pro.
pub fn stripe_vars(sandbox: &exact_sandbox::Sandbox) -> Vec<(&'static str, &str)> {
    let prices = &sandbox.stripe_config().prices;
    let mut vars = vec![("STRIPE_API_BASE", sandbox.base_url())];
    for (name, price) in ["STRIPE_PRICE_STARTER", "STRIPE_PRICE_PRO"]
        .into_iter()
        .zip(prices)
    {
        vars.push((name, price.id.as_str()));
    }
    vars
}

/// Adds the local Stripe's secret key and webhook signing secret(s) to the
/// Workers' secrets file (several secrets, during a rotation, are
/// comma-separated).
pub fn append_stripe_secrets(env_file: &Path, sandbox: &exact_sandbox::Sandbox) -> Result<()> {
    use std::io::Write;
    let stripe = sandbox.stripe_config();
    let mut file = std::fs::OpenOptions::new().append(true).open(env_file)?;
    write!(
        file,
        "STRIPE_SECRET_KEY={}\nSTRIPE_WEBHOOK_SECRET={}\n",
        stripe.secret_key,
        stripe.webhook_secrets.join(",")
    )?;
    Ok(())
}

/// Waits for the browser to come back to the OAuth callback on `listener`
/// and returns the code. The `state` must match what was sent; anything
/// else is answered and ignored until `timeout`.
pub fn await_callback(
    listener: &std::net::TcpListener,
    expected_state: &str,
    timeout: std::time::Duration,
) -> Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let deadline = std::time::Instant::now() + timeout;
    listener.set_nonblocking(true)?;
    loop {
        if std::time::Instant::now() > deadline {
            bail!("no OAuth callback within {timeout:?}");
        }
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        stream.set_nonblocking(false)?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let target = line.split_whitespace().nth(1).unwrap_or("");
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let pairs: std::collections::BTreeMap<String, String> = query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                (
                    boekhouding_core::exact::query::decode(k),
                    boekhouding_core::exact::query::decode(v),
                )
            })
            .collect();
        let (status, body, code) = match (pairs.get("code"), pairs.get("state")) {
            (Some(code), Some(state)) if state == expected_state => (
                200,
                "Exact Online is connected. You can close this tab.",
                Some(code.clone()),
            ),
            (_, _) if pairs.contains_key("error") => {
                (400, "Exact Online refused the connection.", None)
            }
            _ => (400, "This is not the callback we are waiting for.", None),
        };
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status} OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        if let Some(code) = code {
            return Ok(code);
        }
        if pairs.contains_key("error") {
            bail!("the authorization was refused: {:?}", pairs.get("error"));
        }
    }
}

/// Connects the demo user to another Exact-compatible server: prints the
/// authorize URL, waits for the callback and provisions the account.
pub fn connect_external(state: &Path, app: &ExactApp, plan: Plan) -> Result<Account> {
    let redirect = app
        .redirect_uri
        .strip_prefix("http://")
        .context("--exact-redirect-uri must be a loopback http:// URL")?;
    let host_port = redirect.split('/').next().unwrap_or("");
    let listener = std::net::TcpListener::bind(host_port)
        .with_context(|| format!("cannot listen on {host_port} for the OAuth callback"))?;
    let mut raw = [0u8; 16];
    OsRandom
        .fill(&mut raw)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let oauth_state = hex::encode(raw);
    println!(
        "\nOpen this URL in a browser and sign in with Exact Online:\n  {}\nWaiting for the callback on {} …",
        boekhouding_core::exact::oauth::authorize_url(app, &oauth_state),
        app.redirect_uri
    );
    let code = await_callback(&listener, &oauth_state, std::time::Duration::from_secs(600))?;
    provision_reusing_key(
        &local_d1_file(state)?,
        &state.join("api-key"),
        &local_secrets(state, app.client_secret.expose(), None)?.token_key,
        app,
        &code,
        plan,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use boekhouding_core::ports::{HttpMethod, HttpRequest, HttpTransport};

    /// The browser is simulated against a sandbox: its login page redirects
    /// to our callback listener, which returns the code.
    #[test]
    fn the_callback_listener_takes_the_code_and_checks_the_state() {
        let sandbox =
            exact_sandbox::Sandbox::start(exact_sandbox::SandboxConfig::default()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let redirect = format!("http://{}/callback", listener.local_addr().unwrap());
        let app = ExactApp {
            base_url: sandbox.base_url().to_owned(),
            client_id: sandbox.client_id().to_owned(),
            client_secret: boekhouding_core::crypto::Secret::new(sandbox.client_secret()),
            redirect_uri: redirect.clone(),
        };
        let browser = {
            let app = app.clone();
            std::thread::spawn(move || {
                let http = BlockingTransport::default();
                // A wrong state first: ignored.
                let _ = block_on(http.send(HttpRequest {
                    method: HttpMethod::Get,
                    url: format!("{}?code=x&state=forged", app.redirect_uri),
                    headers: vec![],
                    body: None,
                }));
                let form = format!(
                    "client_id={}&redirect_uri={}&state=s3cret&response_type=code&username=demo&password=demo&consent=allow",
                    app.client_id,
                    boekhouding_core::exact::query::encode(&app.redirect_uri)
                );
                let r = block_on(http.send(HttpRequest {
                    method: HttpMethod::Post,
                    url: format!("{}/api/oauth2/auth", app.base_url),
                    headers: vec![(
                        "Content-Type".into(),
                        "application/x-www-form-urlencoded".into(),
                    )],
                    body: Some(form),
                }))
                .unwrap();
                let location = r.header("location").unwrap().to_owned();
                block_on(http.send(HttpRequest {
                    method: HttpMethod::Get,
                    url: location,
                    headers: vec![],
                    body: None,
                }))
                .unwrap()
            })
        };
        let code = await_callback(&listener, "s3cret", std::time::Duration::from_secs(20)).unwrap();
        let answered = browser.join().unwrap();
        assert_eq!(answered.status, 200);
        assert!(code.contains('!'), "the sandbox's code reached us decoded");
        let tokens = block_on(boekhouding_core::exact::oauth::exchange_code(
            &BlockingTransport::default(),
            &app,
            &code,
            Utc::now(),
        ));
        assert!(tokens.is_ok(), "the code is valid at the server");
    }
}
