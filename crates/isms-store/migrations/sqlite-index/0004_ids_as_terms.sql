-- isms search index schema, version 4: event ids become tokens of the term index (`i <uuid bytes>`, see
-- src/terms.rs; the events file dropped its id b-tree in its migration 0003). Segments written before
-- hold no id tokens: forgetting `indexed_through` makes the store rebuild them from the events at open.
DELETE FROM index_state WHERE key = 'indexed_through';
