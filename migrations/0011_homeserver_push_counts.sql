-- Unread counts read only the index: thread and highlight are in it, so
-- counting a room's unread actions touches no table row.
DROP INDEX push_actions_room;
CREATE INDEX push_actions_room ON push_actions (user_id, room_id, stream_pos, thread_id, highlight);
