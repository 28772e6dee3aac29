-- isms search index schema, version 3: summary words join the field terms in the segment files (see
-- src/sqlite/segments.rs), so the FTS5 word table goes. The segments of version 2 have text tokens and
-- no words: forgetting `indexed_through` makes the store rebuild them from the events at open.
DROP TABLE IF EXISTS event_words;
DELETE FROM index_state WHERE key = 'indexed_through';
