-- isms SQLite schema, version 4: the time index orders events by the second of their time, then by
-- seq, instead of by their exact time. Events arrive nearly in time order but with jitter (many senders,
-- clocks a few seconds apart): keyed by the exact time, each insert of a batch landed on a different
-- leaf page of the index, and every such page was written to the log again at every commit (about
-- 4 KB per event, two thirds of all bytes written). Keyed by the second, a batch's inserts land at the
-- end of the few seconds it spans. Reads order by (second, time, seq): the index gives the first, a
-- small sort within each second the rest (src/sqlite/mod.rs, TIME_BUCKET).
DROP INDEX IF EXISTS events_by_time;
CREATE INDEX events_by_time ON events (utctimestamp / 1000000);
