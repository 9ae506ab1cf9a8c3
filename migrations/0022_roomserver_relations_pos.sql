-- Relations are ordered as the timeline is: by the related event's
-- position (COALESCE(backfill_pos, event_nid) of roomserver_events), so
-- that a thread reply fetched from another server's history sorts among
-- the old ones, not as the newest, and pages by the positions clients
-- are given.
ALTER TABLE roomserver_relations ADD COLUMN pos BIGINT NOT NULL DEFAULT 0;
UPDATE roomserver_relations SET pos = COALESCE((SELECT COALESCE(e.backfill_pos, e.event_nid) FROM roomserver_events e
    WHERE e.event_nid = roomserver_relations.event_nid), event_nid);
DROP INDEX roomserver_relations_target;
DROP INDEX roomserver_relations_room;
CREATE INDEX roomserver_relations_target ON roomserver_relations (relates_to, rel_type, pos);
CREATE INDEX roomserver_relations_room ON roomserver_relations (room_nid, rel_type, pos);
