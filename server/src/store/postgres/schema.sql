-- Version 1 of the lobster-relay PostgreSQL schema. Mirrors the SQLite
-- schema; times are Unix milliseconds from the relay's clock (BIGINT).
CREATE TABLE agents (
    agent_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    relay_id   TEXT NOT NULL UNIQUE,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_seen  BIGINT
);

-- seq is the acceptance order; id is the public, time-sortable event id.
-- headers is the JSON text of [[name, value], ...] (order kept).
CREATE TABLE events (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    agent_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    headers         TEXT NOT NULL,
    body            BYTEA NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_session   TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX events_queue ON events (agent_id, status, seq);
CREATE INDEX events_age ON events (status, updated_at);

-- seq orders an event's history.
CREATE TABLE attempts (
    seq        BIGSERIAL PRIMARY KEY,
    event_id   TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    session_id TEXT,
    at         BIGINT NOT NULL,
    outcome    TEXT NOT NULL,
    error      TEXT
);
CREATE INDEX attempts_event ON attempts (event_id, seq);

-- Replay protection: one row per (agent, delivery id) for the dedup window.
-- The primary key is what makes concurrent duplicates on several instances
-- store one event.
CREATE TABLE dedup (
    agent_id   TEXT NOT NULL,
    key        TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, key)
);
CREATE INDEX dedup_expiry ON dedup (expires_at);

-- Migration 2 (the workspaces table) is in workspaces.rs.
