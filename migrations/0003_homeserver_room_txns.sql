-- The client room API's own tables (homeserver component): transaction ids
-- of PUT /send and /redact, and the rooms each user has forgotten. Room
-- contents themselves belong to the roomserver.

-- A transaction id names one request per device and endpoint: a retry
-- gets the event id of the first attempt. A row with an empty event_id is
-- a reservation: a request is sending the event right now (or crashed
-- while doing so, which created_ts tells once it is old).
CREATE TABLE room_txns (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    -- the endpoint and its path parameters other than the txn id, e.g.
    -- "send <room id> <event type>": the spec scopes a txn id to a device
    -- and an endpoint, and a retry has the same path.
    scope      TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL DEFAULT '',
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, scope, txn_id)
);
-- unsigned.transaction_id: which of the events served was sent by the
-- requesting device, and under which txn id.
CREATE INDEX room_txns_event ON room_txns (event_id);

-- Rooms a user has forgotten after leaving. membership_pos is the stream
-- position of the membership the user had when forgetting: the room stays
-- forgotten only while that membership is current, so a rejoin (or a new
-- invite) brings it back without anyone deleting the row.
CREATE TABLE forgotten_rooms (
    user_id        TEXT NOT NULL,
    room_id        TEXT NOT NULL,
    membership_pos BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
