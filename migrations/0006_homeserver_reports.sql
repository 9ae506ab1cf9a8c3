-- Content reports (homeserver component): what users reported to this
-- server's admins with POST /rooms/{roomId}/report/{eventId} (an event)
-- and POST /rooms/{roomId}/report (a whole room). Kept for admins to
-- review; nothing else reads them.
CREATE TABLE content_reports (
    id          {{autoid}},
    received_ts BIGINT NOT NULL,
    -- the reporting user
    user_id     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    -- the reported event; '' for a report of the whole room
    event_id    TEXT NOT NULL DEFAULT '',
    -- the reporter's words; NULL when none were given
    reason      TEXT,
    -- from -100 (most offensive) to 0; NULL when not given (room reports
    -- have none)
    score       BIGINT
);
-- An admin reviewing one room's reports.
CREATE INDEX content_reports_room ON content_reports (room_id, id);
