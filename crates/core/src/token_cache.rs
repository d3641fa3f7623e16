//! The per-isolate cache of opened Exact access tokens: a tool call that
//! finds its connection's token here skips opening the sealed token
//! (AES-GCM) it loaded with the connection row.
//!
//! Bounds, so that it can never hand out a token the database would not:
//! an entry is keyed by connection id, token generation AND the access
//! token's expiry as stored (a refresh or a reconnect writes a new
//! generation; anything else that moves the stored expiry, such as an
//! operator or a test marking the token expired, changes the key too), and
//! the caller always looks up with the values of the row it has just
//! loaded, so an entry the row no longer matches is never found again; it
//! is used only until the token is due for refresh
//! (`exact::oauth::refresh_due`, a few minutes before Exact's expiry); at
//! most [`CAPACITY`] entries are kept (the oldest goes first). It holds
//! no credential of our own customers (API keys and OAuth tokens are
//! checked against the database on every request).

use chrono::{DateTime, Utc};

use crate::crypto::Secret;
use crate::exact::oauth;

/// Entries kept per isolate.
pub const CAPACITY: usize = 64;

#[derive(Clone)]
struct Entry {
    connection_id: String,
    generation: i64,
    token: Secret,
    expires_at: DateTime<Utc>,
}

/// Opened access tokens by (connection, generation). Its `Debug` shows
/// no token.
#[derive(Default, Clone)]
pub struct TokenCache {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl TokenCache {
    /// The token of this connection at this generation and stored expiry
    /// (the loaded row's), if cached and not yet due for refresh at `now`.
    pub fn get(
        &self,
        connection_id: &str,
        generation: i64,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Secret> {
        self.entries
            .iter()
            .find(|e| {
                e.connection_id == connection_id
                    && e.generation == generation
                    && e.expires_at == expires_at
            })
            .filter(|e| !oauth::refresh_due(e.expires_at, now))
            .map(|e| e.token.clone())
    }

    /// Remembers a token opened from the row of `generation`; replaces
    /// any entry of the same connection (an older generation is dead).
    pub fn put(
        &mut self,
        connection_id: &str,
        generation: i64,
        token: Secret,
        expires_at: DateTime<Utc>,
    ) {
        self.entries.retain(|e| e.connection_id != connection_id);
        if self.entries.len() >= CAPACITY {
            self.entries.remove(0);
        }
        self.entries.push(Entry {
            connection_id: connection_id.to_owned(),
            generation,
            token,
            expires_at,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::minutes(minute)
    }

    #[test]
    fn a_token_is_found_only_for_its_generation_and_until_it_is_due_for_refresh() {
        let mut cache = TokenCache::default();
        // Exact's access tokens live ten minutes.
        cache.put("c1", 7, Secret::new("tok-7"), at(10));
        assert_eq!(
            cache
                .get("c1", 7, at(10), at(0))
                .map(|s| s.expose().to_owned()),
            Some("tok-7".into())
        );
        // A refresh or reconnect wrote generation 8: the old token is dead.
        assert!(cache.get("c1", 8, at(10), at(0)).is_none());
        assert!(cache.get("c2", 7, at(10), at(0)).is_none());
        // The row's stored expiry moved (marked expired) without a new
        // generation: the row is what counts, so no answer.
        assert!(cache.get("c1", 7, at(-1), at(0)).is_none());
        // Once a refresh is due, the cache no longer answers.
        let due = oauth::earliest_refresh(at(10));
        assert!(
            cache
                .get("c1", 7, at(10), due - Duration::seconds(1))
                .is_some()
        );
        assert!(cache.get("c1", 7, at(10), due).is_none());
        assert!(cache.get("c1", 7, at(10), at(11)).is_none());
        // The new generation replaces the old entry.
        cache.put("c1", 8, Secret::new("tok-8"), at(20));
        assert_eq!(cache.len(), 1);
        assert!(cache.get("c1", 7, at(10), at(0)).is_none());
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity_and_debug_shows_no_token() {
        let mut cache = TokenCache::default();
        for i in 0..(CAPACITY + 10) {
            cache.put(&format!("c{i}"), 1, Secret::new("SECRET-token"), at(10));
        }
        assert_eq!(cache.len(), CAPACITY);
        assert!(
            cache.get("c0", 1, at(10), at(0)).is_none(),
            "the oldest went first"
        );
        assert!(
            cache
                .get(&format!("c{}", CAPACITY + 9), 1, at(10), at(0))
                .is_some()
        );
        assert!(!format!("{cache:?}").contains("SECRET"));
    }
}
