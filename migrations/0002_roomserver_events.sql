-- The roomserver's tables: rooms, events, state snapshots, forward
-- extremities, current memberships and the output outbox. Matrix ids are
-- interned to numeric ids (nids) that never leave the roomserver.

CREATE TABLE roomserver_rooms (
    room_nid       {{autoid}},
    room_id        TEXT NOT NULL UNIQUE,
    room_version   TEXT NOT NULL,
    -- the snapshot of the room's current state
    state_snapshot_nid BIGINT NOT NULL DEFAULT 0,
    created_ts     BIGINT NOT NULL
);

CREATE TABLE roomserver_event_types (
    type_nid   {{autoid}},
    event_type TEXT NOT NULL UNIQUE
);

CREATE TABLE roomserver_state_keys (
    state_key_nid {{autoid}},
    state_key     TEXT NOT NULL UNIQUE
);

-- Every event the server holds, accepted or not. event_nid doubles as the
-- stream position of accepted events: within a room, the sequencer
-- assigns them in order.
CREATE TABLE roomserver_events (
    event_nid        {{autoid}},
    room_nid         BIGINT NOT NULL,
    event_id         TEXT NOT NULL UNIQUE,
    type_nid         BIGINT NOT NULL,
    -- 0 for events that are not state
    state_key_nid    BIGINT NOT NULL DEFAULT 0,
    depth            BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    sender           TEXT NOT NULL,
    event_json       TEXT NOT NULL,
    -- state before and after the event (equal for non-state events)
    state_before_nid BIGINT NOT NULL DEFAULT 0,
    state_after_nid  BIGINT NOT NULL DEFAULT 0,
    -- why the auth rules rejected the event; empty when accepted
    rejected         TEXT NOT NULL DEFAULT '',
    soft_failed      BOOLEAN NOT NULL DEFAULT FALSE,
    -- the redaction that applies to this event, if any
    redacted_by      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX roomserver_events_room ON roomserver_events (room_nid, event_nid);

-- State snapshots share structure: a snapshot is a delta over its parent,
-- and a full copy (parent 0) is written when the chain of deltas has grown
-- to half the size of the state, so reads stay short and writes small.
CREATE TABLE roomserver_state_snapshots (
    snapshot_nid {{autoid}},
    room_nid     BIGINT NOT NULL,
    parent_nid   BIGINT NOT NULL,
    -- entries in the deltas since the last full snapshot
    chain_rows   BIGINT NOT NULL,
    -- number of entries of the whole state
    state_size   BIGINT NOT NULL
);

CREATE TABLE roomserver_snapshot_entries (
    snapshot_nid  BIGINT NOT NULL,
    type_nid      BIGINT NOT NULL,
    state_key_nid BIGINT NOT NULL,
    -- 0: the key is absent from this snapshot (after a resolution)
    event_nid     BIGINT NOT NULL,
    PRIMARY KEY (snapshot_nid, type_nid, state_key_nid)
);

CREATE TABLE roomserver_extremities (
    room_nid  BIGINT NOT NULL,
    event_nid BIGINT NOT NULL,
    PRIMARY KEY (room_nid, event_nid)
);

-- Current membership of every user in every room, from current state.
CREATE TABLE roomserver_memberships (
    room_nid   BIGINT NOT NULL,
    user_id    TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_nid  BIGINT NOT NULL,
    PRIMARY KEY (room_nid, user_id)
);
CREATE INDEX roomserver_memberships_user ON roomserver_memberships (user_id, membership);

-- Accepted events not yet published on the bus, written in the event's
-- transaction so that a crash between commit and publish loses nothing.
CREATE TABLE roomserver_outbox (
    event_nid   BIGINT PRIMARY KEY,
    output_json TEXT NOT NULL
);
