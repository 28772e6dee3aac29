-- isms SQLite schema, version 1.
-- Events: one row per event, the normalized document as JSON text, event time and receipt time as
-- microseconds since the Unix epoch. `seq` is the arrival order (assigned by the single writer).
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL,
    utctimestamp INTEGER NOT NULL,
    receivedtimestamp INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (utctimestamp);
CREATE INDEX events_by_id ON events (id);

-- Words of the summary, for free-text search (contentless: the text lives in `events.doc`).
CREATE VIRTUAL TABLE event_words USING fts5 (
    summary,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0'
);

-- Inverted index of field=value terms (see src/terms.rs): one token per scalar and per present path, so
-- a query on ANY field finds its candidates without scanning. Prefilter only: exact tests run on `doc`.
CREATE VIRTUAL TABLE event_terms USING fts5 (
    terms,
    content = '',
    contentless_delete = 1,
    detail = none,
    tokenize = 'ascii'
);

-- API keys: only an argon2 hash of the secret is kept.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    created INTEGER NOT NULL,
    revoked INTEGER
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked IS NULL;

