//! Migrations that rebuild tables keep the rows they move: applied to a
//! database that already holds data, with foreign keys on as D1 has them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use boekhouding_core::storage::{SqlExecutor, Statement};
use boekhouding_sqlite::{SqliteDb, migrations_dir, read_migrations};
use futures::executor::block_on;
use serde_json::{Value, json};

fn exec(db: &SqliteDb, sql: &'static str) {
    block_on(db.execute(Statement::new(sql, vec![]))).unwrap();
}

/// Every row of a read, as JSON objects (what D1 answers too).
fn rows(db: &SqliteDb, sql: &'static str) -> Value {
    Value::Array(
        block_on(db.query(Statement::new(sql, vec![])))
            .unwrap()
            .into_iter()
            .map(Value::Object)
            .collect(),
    )
}

/// 0018 rebuilds `connections` and `administrations` (a table constraint
/// cannot be dropped in SQLite). Dropping the old parent first would
/// cascade and empty `administrations`: the rows must survive, keep their
/// ids and choices, and the cascade from users must still work after.
#[test]
fn rebuilding_connections_keeps_every_connection_and_administration() {
    let all = read_migrations(&migrations_dir()).unwrap();
    let split = all
        .iter()
        .position(|m| m.name.starts_with("0018_"))
        .expect("migration 0018 exists");
    let db = SqliteDb::open_in_memory().unwrap();
    db.apply(&all[..split]).unwrap();
    exec(
        &db,
        "INSERT INTO users (id, email, created_at, updated_at) VALUES ('u1', 'a@b.nl', 1, 1)",
    );
    exec(
        &db,
        "INSERT INTO connections (id, user_id, region, exact_user_id, access_token_sealed,
            refresh_token_sealed, access_expires_at, refresh_expires_at, token_generation,
            lapse_warned_for, created_at, updated_at)
         VALUES ('c1', 'u1', 'nl', 'x1', 'sealed-a', 'sealed-r', 10, 20, 7, 3, 1, 1)",
    );
    exec(
        &db,
        "INSERT INTO administrations (id, connection_id, division_code, name, is_active,
            is_default, deactivated_at, created_at, updated_at)
         VALUES ('a1', 'c1', 1000001, 'Bakkerij', 1, 1, NULL, 1, 1),
                ('a2', 'c1', 1000002, 'IT', 0, 0, 99, 1, 1)",
    );
    db.apply(&all[split..]).unwrap();

    assert_eq!(
        rows(
            &db,
            "SELECT id, connection_id, is_active, is_default, deactivated_at
             FROM administrations ORDER BY id"
        ),
        json!([
            {"id": "a1", "connection_id": "c1", "is_active": 1, "is_default": 1, "deactivated_at": null},
            {"id": "a2", "connection_id": "c1", "is_active": 0, "is_default": 0, "deactivated_at": 99},
        ])
    );
    assert_eq!(
        rows(
            &db,
            "SELECT token_generation, lapse_warned_for, access_token_sealed FROM connections"
        ),
        json!([{"token_generation": 7, "lapse_warned_for": 3, "access_token_sealed": "sealed-a"}])
    );

    // A second login of the same user at the same site is now allowed; the
    // same login twice is not.
    exec(
        &db,
        "INSERT INTO connections (id, user_id, region, exact_user_id, access_token_sealed,
            refresh_token_sealed, access_expires_at, refresh_expires_at, created_at, updated_at)
         VALUES ('c2', 'u1', 'nl', 'x2', 's', 's', 10, 20, 1, 1)",
    );
    assert!(
        block_on(db.execute(Statement::new(
            "INSERT INTO connections (id, user_id, region, exact_user_id, access_token_sealed,
                refresh_token_sealed, access_expires_at, refresh_expires_at, created_at, updated_at)
             VALUES ('c3', 'u1', 'nl', 'x2', 's', 's', 10, 20, 1, 1)",
            vec![],
        )))
        .is_err()
    );

    // The child still follows its new parent: deleting the user empties both.
    exec(&db, "DELETE FROM users WHERE id = 'u1'");
    assert_eq!(
        rows(
            &db,
            "SELECT (SELECT COUNT(*) FROM connections) AS c, (SELECT COUNT(*) FROM administrations) AS a"
        ),
        json!([{"c": 0, "a": 0}])
    );
}
