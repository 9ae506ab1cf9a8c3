-- A copy of the device lists of other servers' users who share a room
-- with this server's users, kept from their servers' m.device_list_update
-- and m.signing_key_update EDUs and /user/devices answers, so that
-- /keys/query need not ask those servers at every call. stream_id is the
-- last of that server's device-list stream ids applied; stale marks a
-- list to fetch again (a gap in the EDUs, a failed fetch, or the user
-- joining a room: their server may not have told this one of changes
-- while no room was shared).
CREATE TABLE remote_device_lists (
    user_id          TEXT PRIMARY KEY,
    stream_id        BIGINT NOT NULL,
    stale            BOOLEAN NOT NULL DEFAULT FALSE,
    master_key       TEXT NOT NULL DEFAULT '',
    self_signing_key TEXT NOT NULL DEFAULT ''
);

CREATE TABLE remote_devices (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    -- the device's signed device_keys ('' when its server gave none)
    device_keys  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
