-- Relations between events (m.relates_to: threads, edits, references,
-- annotations), indexed when an event is accepted, for /relations,
-- /threads and the aggregations in unsigned.m.relations.
CREATE TABLE roomserver_relations (
    event_nid  BIGINT PRIMARY KEY,
    room_nid   BIGINT NOT NULL,
    -- the event related to
    relates_to TEXT NOT NULL,
    rel_type   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    sender     TEXT NOT NULL
);
CREATE INDEX roomserver_relations_target ON roomserver_relations (relates_to, rel_type, event_nid);
CREATE INDEX roomserver_relations_room ON roomserver_relations (room_nid, rel_type, event_nid);
