-- The sync streams (homeserver/internal/streams) and what /sync reads
-- besides the rooms themselves: receipts, account data, presence, filters.

-- Positions of the streams that several writers append to. A writer takes
-- the next position with UPDATE … RETURNING inside its transaction: the
-- row lock makes positions commit in order, so a reader that saw position
-- N has seen everything before N.
CREATE TABLE sync_stream_positions (
    stream TEXT PRIMARY KEY,
    pos    BIGINT NOT NULL
);
INSERT INTO sync_stream_positions (stream, pos) VALUES ('receipts', 0), ('account_data', 0), ('presence', 0);

-- The roomserver's output in the order sync consumed it. sync_pos is the
-- rooms stream's position (one writer, so ids commit in order on both
-- engines); stream_pos is the roomserver's position of the event, in the
-- same order within a room.
CREATE TABLE sync_events (
    sync_pos   {{autoid}},
    room_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL UNIQUE,
    stream_pos BIGINT NOT NULL
);
CREATE INDEX sync_events_room ON sync_events (room_id, sync_pos);

-- Current membership of every user (local or not) in every room sync has
-- seen, with the rooms stream position of its last change.
CREATE TABLE sync_memberships (
    room_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    sender     TEXT NOT NULL,
    sync_pos   BIGINT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX sync_memberships_user ON sync_memberships (user_id, sync_pos);

-- The latest receipt of each type (and thread) of each user in each room.
CREATE TABLE receipts (
    room_id          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    receipt_type     TEXT NOT NULL,
    thread_id        TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_stream_pos BIGINT NOT NULL,
    ts               BIGINT NOT NULL,
    pos              BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_pos ON receipts (pos);

-- Account data, global (room_id '') and per room.
CREATE TABLE account_data (
    user_id  TEXT NOT NULL,
    room_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    content  TEXT NOT NULL,
    pos      BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_pos ON account_data (user_id, pos);

CREATE TABLE presence (
    user_id          TEXT PRIMARY KEY,
    state            TEXT NOT NULL,
    status_msg       TEXT NOT NULL,
    last_active_ts   BIGINT NOT NULL,
    pos              BIGINT NOT NULL
);
CREATE INDEX presence_pos ON presence (pos);

CREATE TABLE sync_filters (
    filter_id   {{autoid}},
    user_id     TEXT NOT NULL,
    filter_json TEXT NOT NULL
);
