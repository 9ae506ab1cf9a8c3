-- Client transaction ids of local events (PUT /send and /redact), written
-- in the event's own transaction: a retry finds the event sent the first
-- time, even across a crash, and nothing is sent twice. The key is the
-- spec's: the sending device, the endpoint (scope, which names the room)
-- and the client's id.
CREATE TABLE roomserver_txns (
    sender     TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    event_nid  BIGINT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (sender, device_id, scope, txn_id)
);
