-- isms SQLite schema, version 3: events are found by id through the term index (each id is a token of
-- its own kind, `i <uuid bytes>`, see src/terms.rs), so the b-tree index on `events.id` goes: it cost a
-- twentieth of ingestion's CPU. The index file's migration 0004 makes the term index rebuild with ids.
DROP INDEX IF EXISTS events_by_id;
