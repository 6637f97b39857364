-- Version 1 of the lobster-relay SQLite schema. Times are Unix milliseconds.
CREATE TABLE agents (
    agent_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    relay_id   TEXT NOT NULL UNIQUE,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    last_seen  INTEGER
);

-- seq is the acceptance order; id is the public, time-sortable event id.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    agent_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    headers         TEXT NOT NULL,
    body            BLOB NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_session   TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX events_queue ON events (agent_id, status, seq);
CREATE INDEX events_age ON events (status, updated_at);

CREATE TABLE attempts (
    event_id   TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    session_id TEXT,
    at         INTEGER NOT NULL,
    outcome    TEXT NOT NULL,
    error      TEXT
);
CREATE INDEX attempts_event ON attempts (event_id);

-- Replay protection: one row per (agent, delivery id) for the dedup window.
CREATE TABLE dedup (
    agent_id   TEXT NOT NULL,
    key        TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, key)
) WITHOUT ROWID;

-- Version 2 (the workspaces table) is applied on top by workspaces.rs, for
-- new and upgraded databases alike.
