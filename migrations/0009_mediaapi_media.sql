-- The media repository (mediaapi component). A file's bytes live on disk
-- under media.store_dir, named by their SHA-256, once however many media
-- items share them; these tables say which media ids exist and what they
-- point at.
CREATE TABLE media (
    -- the server that owns the media id: this server for uploads, another
    -- for remote media cached here
    origin         TEXT NOT NULL,
    media_id       TEXT NOT NULL,
    -- the local uploader (or creator of a pending async upload); '' for
    -- remote media
    user_id        TEXT NOT NULL DEFAULT '',
    content_type   TEXT NOT NULL DEFAULT '',
    -- the file name given at upload; '' when none
    upload_name    TEXT NOT NULL DEFAULT '',
    size_bytes     BIGINT NOT NULL DEFAULT 0,
    -- lowercase hex SHA-256 of the content, the file's name on disk; ''
    -- while an async upload is pending
    sha256         TEXT NOT NULL DEFAULT '',
    created_ts     BIGINT NOT NULL,
    -- when the content arrived; NULL while an async upload is pending
    uploaded_ts    BIGINT,
    -- a pending async upload lapses then (ms); NULL once uploaded
    expires_ts     BIGINT,
    -- quarantined media are never served (admins, antivirus)
    quarantined    BOOLEAN NOT NULL DEFAULT FALSE,
    -- last time it was served, for the remote cache purge
    last_access_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, media_id)
);
-- Quotas, pending uploads and the admin's list of a user's media.
CREATE INDEX media_user ON media (user_id, created_ts);
-- Whether a file on disk is still referenced, and the admin's hash lookup.
CREATE INDEX media_sha256 ON media (sha256);

-- Thumbnails made of a media item, each a file named by its SHA-256 like
-- the media themselves.
CREATE TABLE media_thumbnails (
    origin       TEXT NOT NULL,
    media_id     TEXT NOT NULL,
    -- the size asked for (a configured size, or a request's)
    req_width    INTEGER NOT NULL,
    req_height   INTEGER NOT NULL,
    -- 'crop' or 'scale'
    method       TEXT NOT NULL,
    -- an animated thumbnail (of an animated GIF)
    animated     BOOLEAN NOT NULL DEFAULT FALSE,
    -- the size made
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    PRIMARY KEY (origin, media_id, req_width, req_height, method, animated)
);
CREATE INDEX media_thumbnails_sha256 ON media_thumbnails (sha256);
