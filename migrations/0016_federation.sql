-- The federation component's tables: other servers' signing keys (a cache
-- with their validity, and the signed responses served again by the
-- notary endpoint), inbound transactions already handled (idempotent
-- /send), and the destinations the outbound queue has a sender for.
--
-- And one roomserver column, added here because this migration brings
-- federation: outliers, events known only as part of a room's state or
-- auth chain (a remote join's answer), stored so that later events can be
-- authorised, never in a timeline.

CREATE TABLE federation_server_keys (
    server_name    TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    -- unpadded base64 ed25519 public key
    public_key     TEXT NOT NULL,
    -- ms; 0 for an old key (see expired_ts)
    valid_until_ts BIGINT NOT NULL,
    -- ms; 0 while the key is current
    expired_ts     BIGINT NOT NULL,
    fetched_ts     BIGINT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);

-- The latest signed /_matrix/key/v2/server answer of each server, as it
-- came, for /_matrix/key/v2/query.
CREATE TABLE federation_key_responses (
    server_name    TEXT PRIMARY KEY,
    valid_until_ts BIGINT NOT NULL,
    response_json  TEXT NOT NULL
);

-- Inbound transactions handled, with the answer given, so that a
-- retried /send gets the same answer without the work done again.
CREATE TABLE federation_inbound_txns (
    origin        TEXT NOT NULL,
    txn_id        TEXT NOT NULL,
    response_json TEXT NOT NULL,
    received_ts   BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);

-- Servers the outbound queue has sent to: a sender is started for each
-- at start-up, so that what a previous run queued is sent.
CREATE TABLE federation_destinations (
    server_name TEXT PRIMARY KEY,
    added_ts    BIGINT NOT NULL
);

ALTER TABLE roomserver_events ADD COLUMN outlier BOOLEAN NOT NULL DEFAULT FALSE;
