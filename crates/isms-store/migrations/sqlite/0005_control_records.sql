-- The control plane's records (alert generators, alert groups, alert classes, instances): few rows,
-- read whole by the registry, their fields a JSON document. Names are unique among live rows of a
-- kind within their scope (a group's or class's generator); deleted rows are kept (soft delete).
CREATE TABLE control_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    deleted INTEGER
);
CREATE UNIQUE INDEX control_records_live_name ON control_records (kind, scope, name) WHERE deleted IS NULL;
CREATE INDEX control_records_by_kind ON control_records (kind, id);
