-- Server-side search (POST /search): the searchable text of room events
-- (m.room.message bodies, room names and topics), fed from the
-- roomserver's output by homeserver/internal/search. Encrypted events are
-- never here: the server cannot read them.
CREATE TABLE search_events (
    -- the roomserver's stream position: orders "recent" and pages.
    stream_pos BIGINT PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    room_id    TEXT NOT NULL,
    sender     TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- content.body, content.name or content.topic.
    field      TEXT NOT NULL,
    value      TEXT NOT NULL
);
CREATE INDEX search_events_room ON search_events (room_id, stream_pos);

-- The full-text index has no common form: a generated tsvector column
-- with a GIN index on PostgreSQL ('simple' configuration: no stemming,
-- since users write in several languages), an FTS5 table over the same
-- rows on SQLite, kept by triggers so that writes stay one query.
{{if postgres}}
ALTER TABLE search_events ADD COLUMN vector tsvector GENERATED ALWAYS AS (to_tsvector('simple', value)) STORED;
CREATE INDEX search_events_vector ON search_events USING GIN (vector);
{{end}}
{{if sqlite}}
CREATE VIRTUAL TABLE search_fts USING fts5(value, content='search_events', content_rowid='stream_pos');
CREATE TRIGGER search_events_insert AFTER INSERT ON search_events BEGIN
    INSERT INTO search_fts (rowid, value) VALUES (new.stream_pos, new.value);
END;
CREATE TRIGGER search_events_delete AFTER DELETE ON search_events BEGIN
    INSERT INTO search_fts (search_fts, rowid, value) VALUES ('delete', old.stream_pos, old.value);
END;
{{end}}

-- OpenID tokens (POST /user/{userId}/openid/request_token), as SHA-256
-- hashes, checked by the federation API's /openid/userinfo.
CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX openid_tokens_expiry ON openid_tokens (expires_ts);

-- Delayed events (MSC4140) waiting to be sent: what to send, on whose
-- behalf, and when (send_ts = running_since + delay_ms; a restart moves
-- running_since). Kept here so that they survive a restart.
CREATE TABLE delayed_events (
    delay_id      TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    room_id       TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    -- NULL for a message event.
    state_key     TEXT,
    content       TEXT NOT NULL,
    delay_ms      BIGINT NOT NULL,
    running_since BIGINT NOT NULL,
    send_ts       BIGINT NOT NULL
);
CREATE INDEX delayed_events_send ON delayed_events (send_ts);
CREATE INDEX delayed_events_user ON delayed_events (user_id);
CREATE INDEX delayed_events_state ON delayed_events (room_id, event_type, state_key);
