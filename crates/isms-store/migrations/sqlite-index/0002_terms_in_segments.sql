-- isms search index schema, version 2: field terms move from FTS5 to segment files (src/sqlite/segments.rs,
-- directory `isms-terms/` beside the events file). The store notices the empty term index at open and
-- rebuilds both indexes from the events.
DROP TABLE IF EXISTS event_terms;
