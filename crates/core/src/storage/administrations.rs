//! The `administrations` table: the Exact divisions a connection can reach
//! and which of them the user has switched on (within the plan's limit).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, new_id, query_all};
use crate::plan::{Limit, Plan};
use crate::ports::Randomness;
use crate::region::Region;

/// Every read of administrations selects the same columns (with the
/// connection's region); the macro keeps the list in one place while the
/// SQL stays a `&'static str`.
macro_rules! select_administrations {
    ($tail:literal) => {
        concat!(
            "SELECT a.id, a.connection_id, c.region, a.division_code, a.name, a.is_active, ",
            "a.is_default FROM administrations a JOIN connections c ON c.id = a.connection_id ",
            $tail
        )
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Administration {
    pub id: String,
    pub connection_id: String,
    /// The Exact site of the administration's connection: division codes
    /// are unique per site only.
    pub region: Region,
    pub division_code: i64,
    pub name: String,
    pub is_active: bool,
    pub is_default: bool,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    connection_id: String,
    region: Region,
    division_code: i64,
    name: String,
    // D1 returns 0/1 numbers: decode as integers, never as bool.
    is_active: i64,
    is_default: i64,
}

impl From<Row> for Administration {
    fn from(r: Row) -> Self {
        Administration {
            id: r.id,
            connection_id: r.connection_id,
            region: r.region,
            division_code: r.division_code,
            name: r.name,
            is_active: r.is_active != 0,
            is_default: r.is_default != 0,
        }
    }
}

/// A division as Exact reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivisionInfo {
    pub code: i64,
    pub name: String,
}

/// Brings a connection's administrations in line with what Exact reports,
/// after a (re)connect. Known divisions keep their `is_active` choice (the
/// original product reset it on every reconnect); new ones start active
/// while the plan has room in the whole account and the same company is not
/// already active through another Exact login at the same site (see
/// [`starts_active`]); the `current` division becomes the default if the
/// account has none. Divisions Exact no longer reports are switched off.
pub async fn sync_for_connection(
    db: &impl SqlExecutor,
    rng: &impl Randomness,
    connection_id: &str,
    plan: Plan,
    divisions: &[DivisionInfo],
    current: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Vec<Administration>, StorageError> {
    #[derive(Deserialize)]
    struct Owner {
        user_id: String,
        region: Region,
    }
    let Some(owner) = query_all::<Owner>(
        db,
        Statement::new(
            "SELECT user_id, region FROM connections WHERE id = ?",
            vec![connection_id.into()],
        ),
    )
    .await?
    .into_iter()
    .next() else {
        return Ok(Vec::new());
    };
    let mut account = all_for_user(db, &owner.user_id).await?;
    let mut stmts = Vec::new();
    for div in divisions {
        if let Some(known) = account
            .iter()
            .find(|a| a.connection_id == connection_id && a.division_code == div.code)
        {
            stmts.push(Statement::new(
                "UPDATE administrations SET name = ?, updated_at = ? WHERE id = ?",
                vec![div.name.clone().into(), now.into(), known.id.clone().into()],
            ));
            continue;
        }
        let activate = starts_active(&account, owner.region, div.code, plan);
        let id = new_id(rng)?;
        stmts.push(Statement::new(
            "INSERT INTO administrations (id, connection_id, division_code, name, is_active,
                activated_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                id.clone().into(),
                connection_id.into(),
                div.code.into(),
                div.name.clone().into(),
                activate.into(),
                activate.then_some(now).into(),
                now.into(),
                now.into(),
            ],
        ));
        account.push(Administration {
            id,
            connection_id: connection_id.into(),
            region: owner.region,
            division_code: div.code,
            name: div.name.clone(),
            is_active: activate,
            is_default: false,
        });
    }
    for gone in account.iter().filter(|a| {
        a.connection_id == connection_id
            && a.is_active
            && !divisions.iter().any(|d| d.code == a.division_code)
    }) {
        stmts.push(Statement::new(
            "UPDATE administrations SET is_active = 0, is_default = 0, updated_at = ? WHERE id = ?",
            vec![now.into(), gone.id.clone().into()],
        ));
    }
    if let Some(code) = current {
        // Only when the account has no default yet: a user's own choice
        // (on any of their connections) wins.
        stmts.push(Statement::new(
            "UPDATE administrations SET is_default = 1
             WHERE connection_id = ? AND division_code = ? AND is_active = 1
               AND NOT EXISTS (SELECT 1 FROM administrations a
                               JOIN connections c ON c.id = a.connection_id
                               WHERE c.user_id = ? AND a.is_default = 1)",
            vec![connection_id.into(), code.into(), owner.user_id.into()],
        ));
    }
    if !stmts.is_empty() {
        db.batch(stmts).await?;
    }
    list_for_connection(db, connection_id).await
}

/// Whether a division newly found on a connection at `region` starts
/// switched on, given every administration of the account so far: only
/// while the plan's limit has room across all the account's connections,
/// and never when the same company (same site, same code) is already
/// active through another of the user's Exact logins: the two would be
/// one administration that no `division` argument could tell apart.
pub fn starts_active(account: &[Administration], region: Region, code: i64, plan: Plan) -> bool {
    let active = account.iter().filter(|a| a.is_active).count() as u64;
    let duplicate = account
        .iter()
        .any(|a| a.is_active && a.region == region && a.division_code == code);
    !duplicate && !plan.limits().administrations.is_reached(active)
}

/// Every administration of a credential's caller (as [`all_for_user`]),
/// as one statement of the caller's batch.
pub fn for_caller_statement(key: &super::caller::CallerKey) -> Statement {
    use super::caller::with_caller;
    key.statement(
        with_caller!(
            api_key,
            select_administrations!(
                "WHERE c.user_id = (SELECT user_id FROM caller)
             ORDER BY a.is_default DESC, a.is_active DESC, a.division_code, c.region"
            )
        ),
        with_caller!(
            oauth,
            select_administrations!(
                "WHERE c.user_id = (SELECT user_id FROM caller)
             ORDER BY a.is_default DESC, a.is_active DESC, a.division_code, c.region"
            )
        ),
        vec![],
    )
}

/// The rows of [`for_caller_statement`].
pub fn decode_all(rows: Vec<super::Row>) -> Result<Vec<Administration>, StorageError> {
    rows.into_iter()
        .map(|r| super::decode::<Row>(r).map(Administration::from))
        .collect()
}

/// The active ones of [`all_for_user`]'s list: the list
/// [`active_for_user`] reads (both order the default first, then by code
/// and region).
pub fn only_active(all: &[Administration]) -> Vec<Administration> {
    all.iter().filter(|a| a.is_active).cloned().collect()
}

/// The administrations of one connection from [`all_for_user`]'s list, as
/// [`list_for_connection`] orders them.
pub fn of_connection(all: &[Administration], connection_id: &str) -> Vec<Administration> {
    let mut of: Vec<Administration> = all
        .iter()
        .filter(|a| a.connection_id == connection_id)
        .cloned()
        .collect();
    of.sort_by_key(|a| a.division_code);
    of
}

pub async fn list_for_connection(
    db: &impl SqlExecutor,
    connection_id: &str,
) -> Result<Vec<Administration>, StorageError> {
    Ok(query_all::<Row>(
        db,
        Statement::new(
            select_administrations!("WHERE a.connection_id = ? ORDER BY a.division_code"),
            vec![connection_id.into()],
        ),
    )
    .await?
    .into_iter()
    .map(Administration::from)
    .collect())
}

/// Every administration of a user, active or not, for the dashboard.
pub async fn all_for_user(
    db: &impl SqlExecutor,
    user_id: &str,
) -> Result<Vec<Administration>, StorageError> {
    Ok(query_all::<Row>(
        db,
        Statement::new(
            select_administrations!(
                "WHERE c.user_id = ?
             ORDER BY a.is_default DESC, a.is_active DESC, a.division_code, c.region"
            ),
            vec![user_id.into()],
        ),
    )
    .await?
    .into_iter()
    .map(Administration::from)
    .collect())
}

/// The administrations a user may query now: active ones on connections
/// that are not `refresh_failed`.
pub async fn active_for_user(
    db: &impl SqlExecutor,
    user_id: &str,
) -> Result<Vec<Administration>, StorageError> {
    Ok(query_all::<Row>(
        db,
        Statement::new(
            select_administrations!(
                "WHERE c.user_id = ? AND a.is_active = 1
             ORDER BY a.is_default DESC, a.division_code, c.region"
            ),
            vec![user_id.into()],
        ),
    )
    .await?
    .into_iter()
    .map(Administration::from)
    .collect())
}

/// Outcome of switching an administration on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    Changed,
    /// Not the user's administration (or it does not exist).
    NotFound,
    /// Switching on would exceed the plan's administration limit.
    LimitReached {
        limit: u32,
    },
    /// Switched off less than [`TOGGLE_COOLDOWN`] ago on a plan with a
    /// limit: it may be switched on again from `until`.
    CoolingDown {
        until: DateTime<Utc>,
    },
    /// The same company (site and code) is already active through another
    /// of the user's Exact logins.
    ActiveElsewhere,
}

/// How long an administration switched off stays off on a plan with an
/// administration limit.
pub const TOGGLE_COOLDOWN: chrono::Duration = chrono::Duration::hours(1);

/// Makes one of the user's active administrations their default (the one
/// tools use without a `division`): one default per user, in one batch.
/// `Ok(false)`: not theirs, or not active.
pub async fn set_default(
    db: &impl SqlExecutor,
    user_id: &str,
    administration_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let done = db
        .batch(vec![
            Statement::new(
                "UPDATE administrations SET is_default = 0, updated_at = ?
                 WHERE is_default = 1 AND id <> ?
                   AND connection_id IN (SELECT id FROM connections WHERE user_id = ?)
                   AND EXISTS (SELECT 1 FROM administrations a JOIN connections c ON c.id = a.connection_id
                               WHERE a.id = ? AND c.user_id = ? AND a.is_active = 1)",
                vec![
                    now.into(),
                    administration_id.into(),
                    user_id.into(),
                    administration_id.into(),
                    user_id.into(),
                ],
            ),
            Statement::new(
                "UPDATE administrations SET is_default = 1, updated_at = ?
                 WHERE id = ? AND is_active = 1
                   AND connection_id IN (SELECT id FROM connections WHERE user_id = ?)",
                vec![now.into(), administration_id.into(), user_id.into()],
            ),
        ])
        .await?;
    Ok(done.get(1).is_some_and(|e| e.changes == 1))
}

/// Switches one of the user's administrations on or off. The limit check
/// and the update are one statement, so concurrent toggles cannot overrun
/// the plan.
pub async fn set_active(
    db: &impl SqlExecutor,
    user_id: &str,
    administration_id: &str,
    active: bool,
    plan: Plan,
    now: DateTime<Utc>,
) -> Result<Toggle, StorageError> {
    let capped = matches!(plan.limits().administrations, Limit::Capped(_));
    // Unlimited plans have nothing to stretch: no cooldown.
    let cooled_since = if capped { now - TOGGLE_COOLDOWN } else { now };
    let done = if active {
        let cap = plan.limits().administrations.cap_for_sql();
        db.execute(Statement::new(
            "UPDATE administrations SET is_active = 1, activated_at = ?, updated_at = ?
             WHERE id = ? AND is_active = 0
               AND (deactivated_at IS NULL OR deactivated_at <= ?)
               AND connection_id IN (SELECT id FROM connections WHERE user_id = ?)
               AND (SELECT COUNT(*) FROM administrations a JOIN connections c ON c.id = a.connection_id
                    WHERE c.user_id = ? AND a.is_active = 1) < ?
               AND NOT EXISTS (
                    SELECT 1 FROM administrations a
                    JOIN connections c ON c.id = a.connection_id
                    JOIN connections mine ON mine.id = administrations.connection_id
                    WHERE c.user_id = ? AND a.is_active = 1 AND a.id <> administrations.id
                      AND a.division_code = administrations.division_code
                      AND c.region = mine.region)",
            vec![
                now.into(),
                now.into(),
                administration_id.into(),
                cooled_since.into(),
                user_id.into(),
                user_id.into(),
                cap.into(),
                user_id.into(),
            ],
        ))
        .await?
    } else {
        db.execute(Statement::new(
            "UPDATE administrations SET is_active = 0, is_default = 0, deactivated_at = ?,
                updated_at = ?
             WHERE id = ? AND is_active = 1
               AND connection_id IN (SELECT id FROM connections WHERE user_id = ?)",
            vec![
                now.into(),
                now.into(),
                administration_id.into(),
                user_id.into(),
            ],
        ))
        .await?
    };
    if done.changes == 1 {
        return Ok(Toggle::Changed);
    }
    // Tell "not yours / already so" apart from "cooling down" and "over
    // the limit".
    #[derive(Deserialize)]
    struct State {
        is_active: i64,
        deactivated_at: Option<i64>,
        twin_active: i64,
    }
    let mine = query_all::<State>(
        db,
        Statement::new(
            "SELECT a.is_active, a.deactivated_at,
                    EXISTS (SELECT 1 FROM administrations o
                            JOIN connections oc ON oc.id = o.connection_id
                            WHERE oc.user_id = c.user_id AND oc.region = c.region
                              AND o.division_code = a.division_code AND o.id <> a.id
                              AND o.is_active = 1) AS twin_active
             FROM administrations a JOIN connections c ON c.id = a.connection_id
             WHERE a.id = ? AND c.user_id = ?",
            vec![administration_id.into(), user_id.into()],
        ),
    )
    .await?;
    let Some(row) = mine.first() else {
        return Ok(Toggle::NotFound);
    };
    if (row.is_active != 0) == active {
        return Ok(Toggle::Changed);
    }
    if active && row.twin_active != 0 {
        return Ok(Toggle::ActiveElsewhere);
    }
    if let Some(off) = row.deactivated_at.map(super::from_unix).transpose()?
        && off > cooled_since
    {
        return Ok(Toggle::CoolingDown {
            until: off + TOGGLE_COOLDOWN,
        });
    }
    match plan.limits().administrations {
        Limit::Capped(limit) => Ok(Toggle::LimitReached { limit }),
        Limit::Unlimited => Ok(Toggle::Changed),
    }
}

/// The administration a tool call asks for: its division code and, when
/// the same code exists at two Exact sites, the region that tells them
/// apart. Written `123456` or `nl:123456`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DivisionRef {
    pub region: Option<Region>,
    pub code: i64,
}

impl DivisionRef {
    /// The largest division code accepted (Exact's are six to nine digits).
    pub const MAX_CODE: i64 = 999_999_999;
    /// The longest written form: a region, a colon and nine digits.
    pub const MAX_LEN: usize = 12;

    /// A code without a region.
    pub fn code(code: i64) -> Self {
        DivisionRef { region: None, code }
    }

    /// The reference that names exactly this administration.
    pub fn of(admin: &Administration) -> Self {
        DivisionRef {
            region: Some(admin.region),
            code: admin.division_code,
        }
    }

    /// `123456` or `nl:123456`; `None` when it is neither or the code is
    /// out of range.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() > Self::MAX_LEN {
            return None;
        }
        let (region, digits) = match text.split_once(':') {
            Some((region, digits)) => (Some(region.parse::<Region>().ok()?), digits),
            None => (None, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let code = digits.parse::<i64>().ok()?;
        (1..=Self::MAX_CODE)
            .contains(&code)
            .then_some(DivisionRef { region, code })
    }
}

impl std::fmt::Display for DivisionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.region {
            Some(region) => write!(f, "{region}:{}", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

/// Why a requested administration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DivisionError {
    #[error("no Exact administration is connected and active; connect Exact Online in the portal")]
    NoneActive,
    #[error(
        "administration {0} is not one of this account's active administrations; call list_divisions for the codes"
    )]
    NotAllowed(DivisionRef),
    /// The code exists at more than one Exact site of this account; the
    /// candidates are written as they must be asked for (`nl:123456`).
    #[error(
        "division {code} exists at more than one Exact site of this account: {}; pass `division` with its region, e.g. \"{}\"",
        .candidates.join(", "),
        .candidates.first().and_then(|c| c.split(' ').next()).unwrap_or_default()
    )]
    Ambiguous { code: i64, candidates: Vec<String> },
}

/// The administrations a plan lets the user query now: the active ones,
/// default first, cut to the plan's limit (a downgrade may leave more
/// switched on than the plan allows).
pub fn allowed(active: &[Administration], plan: Plan) -> Vec<&Administration> {
    let mut list: Vec<&Administration> = active.iter().filter(|a| a.is_active).collect();
    list.sort_by_key(|a| (!a.is_default, a.division_code, a.region.code()));
    if let Limit::Capped(n) = plan.limits().administrations {
        list.truncate(n as usize);
    }
    list
}

/// Whether another active administration shares this one's division code
/// (at another Exact site), so that only `nl:123456` names it.
pub fn needs_region(active: &[Administration], admin: &Administration) -> bool {
    active
        .iter()
        .any(|a| a.is_active && a.division_code == admin.division_code && a.id != admin.id)
}

/// How to ask for `admin`: its code, or `region:code` when the code alone
/// is ambiguous.
pub fn reference(active: &[Administration], admin: &Administration) -> String {
    if needs_region(active, admin) {
        DivisionRef::of(admin).to_string()
    } else {
        admin.division_code.to_string()
    }
}

/// Picks the administration for a call: the requested one if the user may
/// use it, else the default (or the first allowed). A code that exists at
/// two Exact sites is never guessed: without its region it is
/// [`DivisionError::Ambiguous`], listing the candidates.
pub fn resolve(
    active: &[Administration],
    plan: Plan,
    requested: Option<DivisionRef>,
) -> Result<Administration, DivisionError> {
    let allowed = allowed(active, plan);
    match requested {
        Some(wanted) => {
            // Ambiguity is judged over every active administration, not
            // only those within the plan: the other one is what the user
            // may have meant.
            let matching: Vec<&Administration> = active
                .iter()
                .filter(|a| {
                    a.is_active
                        && a.division_code == wanted.code
                        && wanted.region.is_none_or(|r| r == a.region)
                })
                .collect();
            if matching.len() > 1 {
                let mut candidates: Vec<String> = matching
                    .iter()
                    .map(|a| format!("{} ({})", DivisionRef::of(a), a.name))
                    .collect();
                candidates.sort();
                return Err(DivisionError::Ambiguous {
                    code: wanted.code,
                    candidates,
                });
            }
            allowed
                .into_iter()
                .find(|a| matching.first().is_some_and(|m| m.id == a.id))
                .cloned()
                .ok_or(DivisionError::NotAllowed(wanted))
        }
        None => allowed
            .first()
            .map(|a| (*a).clone())
            .ok_or(DivisionError::NoneActive),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adm(code: i64, active: bool, default: bool) -> Administration {
        Administration {
            id: format!("a{code}"),
            connection_id: "c".into(),
            region: Region::Nl,
            division_code: code,
            name: format!("A{code}"),
            is_active: active,
            is_default: default,
        }
    }

    #[test]
    fn requested_divisions_are_checked_against_active_ones_and_the_plan() {
        let list = vec![
            adm(3, true, false),
            adm(1, true, false),
            adm(2, true, true),
            adm(4, false, false),
        ];
        assert_eq!(
            resolve(&list, Plan::Pro, None).unwrap().division_code,
            2,
            "default first"
        );
        assert_eq!(
            resolve(&list, Plan::Pro, Some(DivisionRef::code(3)))
                .unwrap()
                .division_code,
            3
        );
        assert_eq!(
            resolve(&list, Plan::Pro, Some(DivisionRef::code(4))),
            Err(DivisionError::NotAllowed(DivisionRef::code(4))),
            "switched off"
        );
        assert_eq!(
            resolve(&list, Plan::Pro, Some(DivisionRef::code(999))),
            Err(DivisionError::NotAllowed(DivisionRef::code(999))),
            "another tenant's"
        );
        // Free allows two: the default and the lowest other code.
        assert_eq!(
            resolve(&list, Plan::Free, Some(DivisionRef::code(3))),
            Err(DivisionError::NotAllowed(DivisionRef::code(3)))
        );
        assert_eq!(
            resolve(&list, Plan::Free, Some(DivisionRef::code(1)))
                .unwrap()
                .division_code,
            1
        );
        assert_eq!(
            resolve(&[], Plan::Free, None),
            Err(DivisionError::NoneActive)
        );
    }

    #[test]
    fn a_code_shared_by_two_exact_sites_is_never_guessed() {
        let nl = adm(123_456, true, true);
        let be = Administration {
            id: "b123456".into(),
            connection_id: "c-be".into(),
            region: Region::Be,
            name: "Filiaal België".into(),
            ..adm(123_456, true, false)
        };
        let list = vec![nl.clone(), be.clone(), adm(7, true, false)];
        match resolve(&list, Plan::Pro, Some(DivisionRef::code(123_456))) {
            Err(e @ DivisionError::Ambiguous { .. }) => {
                let m = e.to_string();
                assert!(
                    m.contains("be:123456 (Filiaal België)")
                        && m.contains("nl:123456 (A123456)")
                        && m.contains("\"be:123456\""),
                    "{m}"
                );
            }
            other => panic!("an ambiguous code was resolved: {other:?}"),
        }
        let pick = |r: &str| resolve(&list, Plan::Pro, DivisionRef::parse(r));
        assert_eq!(pick("be:123456").unwrap().id, be.id);
        assert_eq!(pick("nl:123456").unwrap().id, nl.id);
        assert_eq!(pick("NL:123456").unwrap().id, nl.id);
        assert_eq!(
            pick("7").unwrap().division_code,
            7,
            "unique codes need no region"
        );
        assert_eq!(pick("nl:7").unwrap().division_code, 7);
        assert_eq!(
            pick("be:7"),
            Err(DivisionError::NotAllowed(
                DivisionRef::parse("be:7").unwrap()
            ))
        );
        // Ambiguity counts administrations outside the plan too: Free
        // allows two, and still never guesses between the sites.
        assert!(matches!(
            resolve(&list, Plan::Free, Some(DivisionRef::code(123_456))),
            Err(DivisionError::Ambiguous { .. })
        ));
        assert_eq!(reference(&list, &be), "be:123456");
        assert_eq!(reference(&list, &list[2]), "7");
        for bad in [
            "",
            "nl:",
            ":1",
            "gb:1",
            "0",
            "1000000000",
            "12a",
            "nl:nl:1",
            "-5",
        ] {
            assert_eq!(DivisionRef::parse(bad), None, "{bad:?}");
        }
    }
}
