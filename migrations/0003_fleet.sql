-- vigia schema 3: several boxes (nodes) on one database. Each camera belongs to one node, each
-- recording file lives on one node, and nodes register themselves with a heartbeat.
-- Rows made before this migration have node '' until the first box claims them
-- (Store::claim_unowned at start).

CREATE TABLE nodes (
    name       TEXT        PRIMARY KEY,
    url        TEXT        NOT NULL,
    instance   TEXT        NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat  TIMESTAMPTZ NOT NULL,
    live       INTEGER     NOT NULL DEFAULT 0,
    recording  INTEGER     NOT NULL DEFAULT 0,
    version    TEXT        NOT NULL DEFAULT ''
);

ALTER TABLE cameras ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN node TEXT NOT NULL DEFAULT '';

-- One camera is never recorded twice at once, whichever boxes try: at most one open row.
CREATE UNIQUE INDEX recordings_one_open_per_camera ON recordings (camera_id)
    WHERE status = 'recording';
-- Retention runs per node, oldest first.
CREATE INDEX recordings_node_start ON recordings (node, start_time, id)
    WHERE status <> 'recording';
CREATE INDEX cameras_node ON cameras (node);
