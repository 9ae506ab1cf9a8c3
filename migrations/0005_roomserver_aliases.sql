-- The roomserver's room directory: local room aliases and the rooms
-- published in the public room list. Rooms are referred to by their nid,
-- so an alias or a listing can only name a room this server knows.

-- A local alias (#localpart:this.server) and the room it points to.
-- creator is the user who made it: the spec lets the creator delete it.
CREATE TABLE roomserver_aliases (
    alias      TEXT PRIMARY KEY,
    room_nid   BIGINT NOT NULL,
    creator    TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX roomserver_aliases_room ON roomserver_aliases (room_nid);

-- A room's visibility in the public room directory, "public" or
-- "private"; a room without a row is private.
CREATE TABLE roomserver_published_rooms (
    room_nid   BIGINT PRIMARY KEY,
    visibility TEXT NOT NULL,
    updated_ts BIGINT NOT NULL
);
