-- The E2EE relay's own tables (homeserver component), beside the key
-- tables of 0001 that die with a device (device_keys, one_time_keys,
-- fallback_keys, device_inbox). The server stores and relays; it never
-- holds a private key or a plaintext.

-- /keys/claim picks a device's one-time keys by algorithm.
CREATE INDEX one_time_keys_algorithm ON one_time_keys (user_id, device_id, algorithm);

-- Cross-signing public keys: a row per user and key type (master,
-- self_signing, user_signing), the key object as uploaded.
CREATE TABLE cross_signing_keys (
    user_id    TEXT NOT NULL,
    key_type   TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    updated_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded with /keys/signatures/upload, merged into the signed
-- object when /keys/query serves it. The target is a device (target_key_id
-- is its device id) or a cross-signing key (its unpadded base64 public key).
CREATE TABLE cross_signing_sigs (
    origin_user_id TEXT NOT NULL,
    -- the signing key's id, e.g. "ed25519:<public key>" or "ed25519:<device id>"
    origin_key_id  TEXT NOT NULL,
    target_user_id TEXT NOT NULL,
    target_key_id  TEXT NOT NULL,
    signature      TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, origin_user_id, origin_key_id)
);

-- Transaction ids of PUT /sendToDevice: a retry with the same id (per
-- device of the sender) sends nothing again.
CREATE TABLE to_device_txns (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- Server-side key backup versions. Versions count up per user and are
-- never reused: a deleted version keeps its row, marked deleted.
CREATE TABLE key_backup_versions (
    user_id   TEXT NOT NULL,
    version   BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    -- JSON object, opaque to the server
    auth_data TEXT NOT NULL,
    -- bumped whenever the version's keys change
    etag      BIGINT NOT NULL DEFAULT 0,
    deleted   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, version)
);

-- The backed-up Megolm sessions, encrypted by the client (session_data is
-- opaque JSON); the other columns decide which of two copies is kept.
CREATE TABLE key_backup_sessions (
    user_id             TEXT NOT NULL,
    version             BIGINT NOT NULL,
    room_id             TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    first_message_index BIGINT NOT NULL,
    forwarded_count     BIGINT NOT NULL,
    is_verified         BOOLEAN NOT NULL,
    session_data        TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
