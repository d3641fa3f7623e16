//! Completing "connect Exact Online": exchange the code, ask Exact who the
//! user is and which administrations they may use, then create or revive
//! the user, the connection (tokens sealed) and the administrations (the
//! user's earlier on/off choices kept). Used by the portal's callback and
//! by `cargo xtask dev`.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::crypto::TokenKeyring;
use crate::exact::oauth::{self, ExactApp};
use crate::exact::{Division, ExactClient, ExactError, Query};
use crate::ports::{Clock, HttpTransport, Randomness};
use crate::region::Region;
use crate::storage::administrations::{self, Administration, DivisionInfo};
use crate::storage::connections::{
    self, Connection, ConnectionError, ExactIdentity, NewConnection,
};
use crate::storage::users::{self, User};
use crate::storage::{SqlExecutor, StorageError};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Exact(#[from] ExactError),
    #[error("Exact did not report an e-mail address for this user")]
    NoEmail,
    /// The signed-in account vanished while the user was at Exact.
    #[error("the account this connection was for no longer exists")]
    NoSuchUser,
    /// A signed-in user connected an Exact login that another account
    /// already holds: an Exact login belongs to one account, so the
    /// tokens are not stored (signing in with that login opens the other
    /// account).
    #[error("this Exact login is connected to another account")]
    LoginHeldElsewhere,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("tokens could not be sealed")]
    Crypto,
}

impl From<ConnectionError> for ConnectError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Storage(s) => ConnectError::Storage(s),
            ConnectionError::Crypto(_) => ConnectError::Crypto,
        }
    }
}

/// What a completed connect produced.
#[derive(Debug, Clone)]
pub struct Connected {
    pub user: User,
    pub connection: Connection,
    pub administrations: Vec<Administration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DivisionRow {
    code: i64,
    description: Option<String>,
    status: Option<i64>,
}

/// Completes the Exact OAuth callback for `region` of someone not signed
/// in (see [`complete_for`]).
#[allow(clippy::too_many_arguments)]
pub async fn complete<D: SqlExecutor, H: HttpTransport, R: Randomness, C: Clock>(
    db: &D,
    http: &H,
    rng: &R,
    clock: &C,
    keyring: &TokenKeyring,
    app: &ExactApp,
    region: Region,
    code: &str,
) -> Result<Connected, ConnectError> {
    complete_for(db, http, rng, clock, keyring, app, region, code, None).await
}

/// Completes the Exact OAuth callback for `region`. Whose connection it
/// becomes: the signed-in `owner`'s when there is one (adding another
/// Exact site or another Exact login to an account; refused with
/// [`ConnectError::LoginHeldElsewhere`] when another account holds the
/// login); else the user who already has this Exact
/// login at this site (so a changed e-mail address at Exact does not make
/// a second account); else the user with Exact's e-mail address, created
/// if new.
#[allow(clippy::too_many_arguments)]
pub async fn complete_for<D: SqlExecutor, H: HttpTransport, R: Randomness, C: Clock>(
    db: &D,
    http: &H,
    rng: &R,
    clock: &C,
    keyring: &TokenKeyring,
    app: &ExactApp,
    region: Region,
    code: &str,
    owner: Option<&str>,
) -> Result<Connected, ConnectError> {
    let now: DateTime<Utc> = clock.now();
    let tokens = oauth::exchange_code(http, app, code, now).await?;
    let client = ExactClient::new(http, clock, &app.base_url, tokens.access_token.clone());
    let me = client.me().await?;
    let email = me
        .email
        .clone()
        .filter(|e| e.contains('@'))
        .ok_or(ConnectError::NoEmail)?;
    // Divisions the consent allows; CurrentDivision may be outside them.
    let (rows, _) = client
        .list_as::<DivisionRow>(
            Division(me.current_division),
            &Query::new("system/Divisions", &["Code", "Description", "Status"]),
            1_000,
        )
        .await?;
    let divisions: Vec<DivisionInfo> = rows
        .into_iter()
        .filter(|r| r.status.unwrap_or(1) == 1)
        .map(|r| DivisionInfo {
            code: r.code,
            name: r
                .description
                .unwrap_or_else(|| format!("Administratie {}", r.code)),
        })
        .collect();
    let holder = connections::find_by_exact_user(db, region, &me.user_id)
        .await?
        .map(|c| c.user_id);
    let known = match (owner, holder) {
        (Some(id), Some(holder)) if holder != id => return Err(ConnectError::LoginHeldElsewhere),
        (Some(id), _) => Some(id.to_owned()),
        (None, holder) => holder,
    };
    let user = match known {
        Some(id) => users::find_by_id(db, &id)
            .await?
            .ok_or(ConnectError::NoSuchUser)?,
        None => users::upsert_by_email(db, rng, &email, me.full_name.as_deref(), now).await?,
    };
    let identity = ExactIdentity {
        exact_user_id: Some(me.user_id.clone()),
        exact_user_name: me.full_name.clone(),
        exact_email: Some(email),
    };
    let connection = connections::connect(
        db,
        rng,
        keyring,
        &NewConnection {
            user_id: &user.id,
            region,
            identity: &identity,
            tokens: &tokens.into_exact_tokens(),
        },
        now,
    )
    .await?;
    let current = divisions
        .iter()
        .any(|d| d.code == me.current_division)
        .then_some(me.current_division);
    let administrations = administrations::sync_for_connection(
        db,
        rng,
        &connection.id,
        user.plan,
        &divisions,
        current,
        now,
    )
    .await?;
    Ok(Connected {
        user,
        connection,
        administrations,
    })
}
