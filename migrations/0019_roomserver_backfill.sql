-- Backfilled events: history older than a room's timeline, fetched from
-- other servers (/backfill) when a client pages past the start of what
-- this server has. They take negative positions (backfill_pos), below
-- every event of the room's timeline, the oldest lowest; other events
-- keep their nid as position. The timeline is ordered by
-- COALESCE(backfill_pos, event_nid), which the index below serves.
ALTER TABLE roomserver_events ADD COLUMN backfill_pos BIGINT;
CREATE INDEX roomserver_events_timeline ON roomserver_events (room_nid, (COALESCE(backfill_pos, event_nid)));
