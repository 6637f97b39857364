//! The connection pool and the two ways work runs on it ([`statement!`] and
//! [`transaction!`]). Both give up after a time limit and retry on a
//! deadlock, so a caller never hangs on a dead or wedged server.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{
    Client, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

use crate::store::StoreError;

/// Connections per instance. Enough for a busy instance (statements are
/// short), small enough that a few instances fit the server's default
/// `max_connections` of 100.
const MAX_CONNECTIONS: usize = 16;

/// How long a caller waits for a free connection, for a new one to be
/// established, or for an idle one to be checked. With PostgreSQL down,
/// calls fail within this (503 at the edge) instead of piling up.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a statement or transaction is tried when PostgreSQL
/// aborted it to break a deadlock.
const DEADLOCK_TRIES: u32 = 3;

/// A time limit for one operation once it has a connection (getting one is
/// bounded by the pool's timeouts).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limit(pub Duration);

/// Most operations are a few short statements.
pub(super) const QUICK: Limit = Limit(Duration::from_secs(10));

/// Builds the pool; connects lazily, so this fails only on a bad URL.
pub(super) fn build(url: &str) -> Result<Pool, StoreError> {
    let mut config = Config::from_str(url)
        .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {}", describe(&e))))?;
    if config.get_ssl_mode() == SslMode::Require {
        // TLS to PostgreSQL is not built yet (NoTls below).
        return Err(StoreError::Database(
            "sslmode=require is not supported yet: reach PostgreSQL over a private network \
             or a TLS tunnel, and use sslmode=disable or sslmode=prefer"
                .into(),
        ));
    }
    if config.get_application_name().is_none() {
        config.application_name("lobster-relay");
    }
    // A dead peer (host gone, network cut) must turn into an error, not a
    // query that waits for TCP's default of many minutes.
    config
        .connect_timeout(POOL_TIMEOUT)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(20));
    // `Fast` recycling drops connections whose socket closed (a PostgreSQL
    // restart closes them all), so the pool heals by itself.
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(MAX_CONNECTIONS)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|e| StoreError::Database(format!("cannot build the connection pool: {e}")))
}

/// A pooled connection; fails fast when PostgreSQL is unreachable.
pub(super) async fn checkout(pool: &Pool) -> Result<Client, StoreError> {
    Ok(pool.get().await?)
}

/// Whether an operation PostgreSQL aborted to break a deadlock (or a
/// serialization conflict) should be tried again; counts the tries.
pub(super) fn try_again(err: &tokio_postgres::Error, tries: &mut u32) -> bool {
    *tries += 1;
    is_deadlock(err) && *tries <= DEADLOCK_TRIES
}

/// The outcome of an operation run under [`Limit`] on `client`.
pub(super) fn settle<T>(
    client: Client,
    Limit(limit): Limit,
    outcome: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
) -> Result<T, StoreError> {
    match outcome {
        Ok(result) => Ok(result?),
        Err(_) => {
            // The connection may be stuck mid-statement: never reuse it.
            drop(Object::take(client));
            Err(StoreError::Database(format!(
                "PostgreSQL did not answer within {} s",
                limit.as_secs()
            )))
        }
    }
}

/// Runs `$body` (a future of `Result<T, tokio_postgres::Error>` using
/// `$c: &Client`; each statement commits on its own, or reads) on a pooled
/// connection, under the time limit; evaluates to `Result<T, StoreError>`.
///
/// A macro rather than a function taking an async closure: the compiler
/// cannot prove such a closure's future `Send` for every lifetime of its
/// argument ("implementation of `Send` is not general enough"), and writes
/// are spawned.
macro_rules! statement {
    ($pool:expr, $limit:expr, |$c:ident| $body:expr) => {
        match $crate::store::postgres::pool::checkout($pool).await {
            Err(err) => Err(err),
            Ok(client) => {
                let limit: $crate::store::postgres::pool::Limit = $limit;
                let work = async {
                    let $c = &client;
                    let mut tries = 1;
                    loop {
                        match $body.await {
                            Err(err)
                                if $crate::store::postgres::pool::try_again(&err, &mut tries) => {}
                            other => break other,
                        }
                    }
                };
                let outcome = tokio::time::timeout(limit.0, work).await;
                $crate::store::postgres::pool::settle(client, limit, outcome)
            }
        }
    };
}

/// Like [`statement!`], with `$tx: &Transaction` inside a transaction that
/// commits if `$body` succeeds; nothing is changed if it fails.
macro_rules! transaction {
    ($pool:expr, $limit:expr, |$tx:ident| $body:expr) => {
        match $crate::store::postgres::pool::checkout($pool).await {
            Err(err) => Err(err),
            Ok(mut client) => {
                let limit: $crate::store::postgres::pool::Limit = $limit;
                let work = async {
                    let mut tries = 1;
                    loop {
                        let result = match client.transaction().await {
                            Err(err) => Err(err),
                            Ok(tx) => {
                                let result = {
                                    let $tx = &tx;
                                    $body.await
                                };
                                match result {
                                    Ok(value) => tx.commit().await.map(|()| value),
                                    Err(err) => {
                                        let _ = tx.rollback().await;
                                        Err(err)
                                    }
                                }
                            }
                        };
                        match result {
                            Err(err)
                                if $crate::store::postgres::pool::try_again(&err, &mut tries) => {}
                            other => break other,
                        }
                    }
                };
                let outcome = tokio::time::timeout(limit.0, work).await;
                $crate::store::postgres::pool::settle(client, limit, outcome)
            }
        }
    };
}

pub(super) use {statement, transaction};

fn is_deadlock(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// `tokio_postgres::Error` displays only its kind ("db error"); the
/// server's message is in its source.
fn describe(err: &tokio_postgres::Error) -> String {
    match std::error::Error::source(err) {
        Some(cause) => format!("{err}: {cause}").replace('\n', "; "),
        None => err.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        StoreError::Database(describe(&err))
    }
}

impl From<PoolError> for StoreError {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::Closed => StoreError::Closed,
            PoolError::Backend(err) => {
                StoreError::Database(format!("cannot connect to PostgreSQL: {}", describe(&err)))
            }
            PoolError::Timeout(kind) => StoreError::Database(format!(
                "no PostgreSQL connection within {} s ({kind:?} timed out)",
                POOL_TIMEOUT.as_secs()
            )),
            other => StoreError::Database(format!("PostgreSQL connection pool: {other}")),
        }
    }
}
