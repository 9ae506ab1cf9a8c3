-- Forward extremities are no longer written at every event: the set in
-- roomserver_extremities holds as of extremities_nid, and the accepted
-- events of the room after it (not rejected, soft-failed or outliers),
-- taken in order, move it on, each replacing its prev_events. The set is
-- written again every few dozen events, or when an event moves it in a
-- way that replay cannot (roomserver/internal/input).
ALTER TABLE roomserver_rooms ADD COLUMN extremities_nid BIGINT NOT NULL DEFAULT 0;
-- Existing rooms' sets are whole: they hold as of the room's last event.
UPDATE roomserver_rooms SET extremities_nid = COALESCE(
    (SELECT MAX(e.event_nid) FROM roomserver_events e WHERE e.room_nid = roomserver_rooms.room_nid), 0);
