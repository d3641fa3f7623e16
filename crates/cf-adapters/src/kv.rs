//! Core's [`KvCache`] over a Workers KV namespace. Values are stored as the
//! JSON strings the caller gives (never as serde-converted JS objects,
//! which turn maps into `{}`).

use boekhouding_core::ports::{CacheError, KvCache};
use worker::kv::KvStore;

/// KV refuses TTLs under 60 seconds.
const MIN_TTL: u32 = 60;

#[derive(Debug)]
pub struct KvStoreCache {
    store: KvStore,
}

impl KvStoreCache {
    pub fn new(store: KvStore) -> Self {
        KvStoreCache { store }
    }

    pub fn from_env(env: &worker::Env) -> Result<Self, CacheError> {
        env.kv(crate::bindings::CACHE)
            .map(Self::new)
            .map_err(|e| CacheError(e.to_string()))
    }
}

impl KvCache for KvStoreCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        self.store
            .get(key)
            .text()
            .await
            .map_err(|e| CacheError(e.to_string()))
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u32) -> Result<(), CacheError> {
        self.store
            .put(key, value)
            .map_err(|e| CacheError(e.to_string()))?
            .expiration_ttl(u64::from(ttl_seconds.max(MIN_TTL)))
            .execute()
            .await
            .map_err(|e| CacheError(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.store
            .delete(key)
            .await
            .map_err(|e| CacheError(e.to_string()))
    }
}

/// The cache when the binding may be missing: without it every read is a
/// miss and writes are dropped, so the product works, only slower.
#[derive(Debug)]
pub struct OptionalCache(pub Option<KvStoreCache>);

impl OptionalCache {
    pub fn from_env(env: &worker::Env) -> Self {
        OptionalCache(KvStoreCache::from_env(env).ok())
    }
}

impl KvCache for OptionalCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        match &self.0 {
            Some(c) => c.get(key).await,
            None => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u32) -> Result<(), CacheError> {
        match &self.0 {
            Some(c) => c.put(key, value, ttl_seconds).await,
            None => Ok(()),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        match &self.0 {
            Some(c) => c.delete(key).await,
            None => Ok(()),
        }
    }
}
