-- vigia schema 1: users, cameras, assignments, revoked tokens, settings.
-- Applied by vigia at start inside a transaction holding an advisory lock (src/store/postgres.rs).

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT        NOT NULL UNIQUE,
    role          TEXT        NOT NULL CHECK (role IN ('admin', 'user', 'viewer')),
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE cameras (
    id               TEXT        PRIMARY KEY,
    ip               TEXT        NOT NULL,
    channel          INTEGER     NOT NULL CHECK (channel > 0),
    name             TEXT        NOT NULL,
    brand            TEXT        NOT NULL,
    port             INTEGER     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    rtsp_url_sealed  BYTEA       NOT NULL,
    rtsp_url_display TEXT        NOT NULL,
    transport        TEXT        NOT NULL CHECK (transport IN ('tcp', 'udp')),
    is_active        BOOLEAN     NOT NULL,
    last_seen        TIMESTAMPTZ,
    is_recording     BOOLEAN     NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT cameras_ip_channel_key UNIQUE (ip, channel)
);

CREATE TABLE user_cameras (
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    camera_id TEXT   NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, camera_id)
);
CREATE INDEX user_cameras_camera ON user_cameras (camera_id);

CREATE TABLE revoked_tokens (
    jti        TEXT        PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
