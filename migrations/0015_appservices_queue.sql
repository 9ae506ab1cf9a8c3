-- Application services (appservices component). Events a bridge is
-- interested in are queued here, in order, before the bus message that
-- carried them is acknowledged; the sender groups the oldest ones into a
-- transaction (txn_id, 0 until then), sends it until the bridge accepts
-- it, and only then deletes its rows: a retry, even after a restart,
-- resends the same transaction id with the same events.
CREATE TABLE appservice_queue (
    id {{autoid}},
    appservice_id TEXT NOT NULL,
    txn_id BIGINT NOT NULL DEFAULT 0,
    -- kind is pdu, edu or to_device: the transaction field it goes to.
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX appservice_queue_order ON appservice_queue (appservice_id, txn_id, id);

-- One row per application service: the last stream sequence of the
-- roomserver's output already queued (so that a redelivery queues
-- nothing twice), the next transaction id, and the state of its queue
-- for the admin.
CREATE TABLE appservice_state (
    appservice_id TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL DEFAULT 0,
    next_txn_id BIGINT NOT NULL DEFAULT 1,
    created_ts BIGINT NOT NULL,
    last_success_ts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    last_error_ts BIGINT NOT NULL DEFAULT 0
);
