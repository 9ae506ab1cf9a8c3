-- Profiles and the user directory (homeserver/internal/profile,
-- homeserver/internal/userdir).

-- Each field of a local user's profile (displayname, avatar_url, m.tz and
-- custom keys of extended profiles, spec v1.16) as JSON.
CREATE TABLE profile_fields (
    user_id TEXT NOT NULL,
    field   TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (user_id, field)
);

-- One row per user the directory knows: local users (from registration
-- and profile changes) and remote users met in rooms. search_text is
-- " <words of the display name> <localpart> ", lowercased, for the extra
-- words of a search of several words.
CREATE TABLE user_directory (
    user_id      TEXT PRIMARY KEY,
    is_local     BOOLEAN NOT NULL,
    display_name TEXT,
    avatar_url   TEXT,
    -- the lowercased display name (or localpart without one): exact
    -- matches rank first, and results are ordered by it.
    sort_name    TEXT NOT NULL,
    search_text  TEXT NOT NULL,
    -- im.vector.hide_profile (Tchap's "red list"): never found.
    hidden       BOOLEAN NOT NULL DEFAULT FALSE
);

-- The words a user is found by: each word of the display name and the
-- localpart, lowercased, as UTF-8 bytes: a prefix search is a range scan
-- of the key, compared bytewise on both engines whatever the collation.
CREATE TABLE user_directory_terms (
    term    {{bytes}} NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (term, user_id)
);
CREATE INDEX user_directory_terms_user ON user_directory_terms (user_id, term);

-- Who is joined where (local and remote users), for "shares a room".
CREATE TABLE user_directory_rooms (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX user_directory_rooms_user ON user_directory_rooms (user_id, room_id);

-- Rooms whose join rule is public: their members are found by everyone.
CREATE TABLE user_directory_public_rooms (
    room_id TEXT PRIMARY KEY
);
