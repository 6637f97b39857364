//! The durable store: the source of truth for agents and events.
//!
//! [`Backend`] is the contract, every operation written once; [`Store`] is
//! the handle the relay passes around, one backend chosen by
//! `DATABASE_URL`. SQLite is the embedded default; PostgreSQL implements
//! the same contract with leases in the database so that several relay
//! instances can share it.
//!
//! Layout: `backend` (the trait), `types` (what goes in and out), `sqlite/`
//! and `postgres/` (the two backends), [`push`] (a live session's port),
//! [`callbacks`], [`workspaces`], [`dashboard`] (their types), `clock`,
//! `tests/` (one conformance suite run on both backends).

mod backend;
pub mod callbacks;
mod clock;
pub mod dashboard;
mod postgres;
pub mod push;
pub(crate) mod sqlite;
mod types;
pub mod workspaces;

#[cfg(test)]
mod tests;

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

pub use backend::{Backend, Read, Write};
pub use clock::Clock;
pub use types::*;

use crate::retry::RetryPolicy;

/// Why a store operation failed. Every variant means "nothing was changed";
/// the HTTP edge answers 503 so that senders retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("the store is shutting down")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Database(err.to_string())
    }
}

/// The store the relay uses: a backend, shared. Cheap to clone; every
/// operation is [`Backend`]'s, reached through `Deref`.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &(dyn Backend + 'static) {
        &*self.0
    }
}

impl Store {
    /// Shares `backend` as the store.
    pub(crate) fn new(backend: impl Backend) -> Store {
        Store(Arc::new(backend))
    }

    /// Opens (creating and migrating) the SQLite database at `path`.
    pub fn open_sqlite(path: &Path, retry: RetryPolicy) -> Result<Store, StoreError> {
        let backend = sqlite::SqliteStore::open(path, retry, Clock::system())?;
        Ok(Store::new(backend))
    }

    /// Connects to PostgreSQL at `url` and migrates the schema (under an
    /// advisory lock, so instances starting together do not race).
    pub async fn open_postgres(url: &str, retry: RetryPolicy) -> Result<Store, StoreError> {
        let backend = postgres::PostgresStore::open(url, retry, Clock::system()).await?;
        Ok(Store::new(backend))
    }
}
