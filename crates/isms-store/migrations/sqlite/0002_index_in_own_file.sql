-- isms SQLite schema, version 2: the search indexes moved to a file of their own (src/sqlite/index.rs),
-- which is rebuilt from the events when it is behind them, as it is right after this upgrade.
DROP TABLE IF EXISTS event_words;
DROP TABLE IF EXISTS event_terms;
