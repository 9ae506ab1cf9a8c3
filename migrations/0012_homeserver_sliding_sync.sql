-- Sliding sync (homeserver/internal/slidingsync) sorts a user's rooms by
-- their latest "bump" event (a message, an encrypted event, a sticker, a
-- call invite, a poll or beacon start, the room's creation: what Synapse
-- counts as activity), and returns that position as bump_stamp. This is
-- each room's latest bump event in the rooms stream.
CREATE TABLE sync_room_bumps (
    room_id  TEXT PRIMARY KEY,
    sync_pos BIGINT NOT NULL
);
-- Rooms from before this table: their latest event stands in for it.
INSERT INTO sync_room_bumps (room_id, sync_pos) SELECT room_id, MAX(sync_pos) FROM sync_events GROUP BY room_id;
