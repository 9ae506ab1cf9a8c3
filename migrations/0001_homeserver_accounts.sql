-- Accounts, devices and tokens of the client-server API (homeserver component).

CREATE TABLE accounts (
    user_id       TEXT PRIMARY KEY,
    localpart     TEXT NOT NULL UNIQUE,
    -- argon2id PHC string; empty for accounts that cannot log in by password.
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated   BOOLEAN NOT NULL DEFAULT FALSE,
    -- the application service that owns the account, if any.
    appservice_id TEXT NOT NULL DEFAULT '',
    created_ts    BIGINT NOT NULL
);

CREATE TABLE devices (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    display_name TEXT,
    created_ts   BIGINT NOT NULL,
    last_seen_ts BIGINT NOT NULL,
    last_seen_ip TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, device_id)
);

-- Tokens are stored as SHA-256 hashes: a leaked table grants nothing.
CREATE TABLE access_tokens (
    id               {{autoid}},
    token_hash       TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    created_ts       BIGINT NOT NULL,
    -- 0: never expires (no refresh token was asked for).
    expires_ts       BIGINT NOT NULL DEFAULT 0,
    -- the refresh token issued with this access token, 0 if none.
    refresh_token_id BIGINT NOT NULL DEFAULT 0,
    -- whether the token has been used; the first use revokes the refresh
    -- token it replaced.
    used             BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE refresh_tokens (
    id          {{autoid}},
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    created_ts  BIGINT NOT NULL,
    -- 0: never expires.
    expires_ts  BIGINT NOT NULL DEFAULT 0,
    -- the refresh token this one replaced, revoked once this pair is used.
    replaces_id BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);

-- Registration tokens (m.login.registration_token).
CREATE TABLE registration_tokens (
    token        TEXT PRIMARY KEY,
    -- NULL: unlimited.
    uses_allowed INTEGER,
    pending      INTEGER NOT NULL DEFAULT 0,
    completed    INTEGER NOT NULL DEFAULT 0,
    -- 0: never expires.
    expiry_ts    BIGINT NOT NULL DEFAULT 0,
    created_ts   BIGINT NOT NULL
);

-- User-interactive auth sessions, in the database so that any client API
-- process behind a load balancer can continue a session.
CREATE TABLE uia_sessions (
    session_id   TEXT PRIMARY KEY,
    -- the user the session authenticates, empty during registration.
    user_id      TEXT NOT NULL,
    -- what the session was started for (method and path): a session cannot
    -- be replayed for another operation.
    operation    TEXT NOT NULL,
    -- JSON list of completed stage types.
    completed    TEXT NOT NULL,
    -- JSON object of what completed stages established (e.g. the token).
    results      TEXT NOT NULL,
    created_ts   BIGINT NOT NULL
);

-- Device-list changes, in order, for the E2EE relay to publish to the
-- users who share a room (and to other servers). A row per change.
CREATE TABLE device_list_changes (
    stream_id  {{autoid}},
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    deleted    BOOLEAN NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, stream_id);

-- E2EE key material, owned by the homeserver component. Only what logout
-- and deletion need is fixed here; the E2EE relay builds on it.
CREATE TABLE device_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE one_time_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, key_id)
);

CREATE TABLE fallback_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    used      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- Pending to-device messages, deleted once the device acknowledges them.
CREATE TABLE device_inbox (
    stream_id    {{autoid}},
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    message_json TEXT NOT NULL,
    created_ts   BIGINT NOT NULL
);
CREATE INDEX device_inbox_device ON device_inbox (user_id, device_id, stream_id);
