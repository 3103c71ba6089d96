-- vigia schema 2: the recording index (PC-NVR). Recordings outlive their camera and their
-- user (the files stay on disk), so there are no foreign keys to them.

CREATE TABLE recordings (
    id           BIGSERIAL        PRIMARY KEY,
    camera_id    TEXT             NOT NULL,
    user_id      BIGINT,
    path         TEXT             NOT NULL,
    start_time   TIMESTAMPTZ      NOT NULL,
    end_time     TIMESTAMPTZ,
    duration_sec DOUBLE PRECISION NOT NULL DEFAULT 0,
    file_size    BIGINT           NOT NULL DEFAULT 0,
    status       TEXT             NOT NULL
                 CHECK (status IN ('recording', 'completed', 'stopped', 'recovered', 'missing')),
    continuous   BOOLEAN          NOT NULL,
    note         TEXT
);
CREATE INDEX recordings_start ON recordings (start_time, id);
CREATE INDEX recordings_camera_start ON recordings (camera_id, start_time);
CREATE INDEX recordings_open ON recordings (id) WHERE status = 'recording';
