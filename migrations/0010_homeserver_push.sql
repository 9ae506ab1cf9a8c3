-- Push (homeserver component): users' push rules, the actions the rules
-- gave each event for each user (notification counts, /notifications),
-- pushers, and the queue of notifications to send to push gateways.

-- Rules a user defined (ids not starting with a dot), by kind. Rules of a
-- kind are evaluated by priority, highest first.
CREATE TABLE push_rules (
    user_id  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    rule_id  TEXT NOT NULL,
    priority BIGINT NOT NULL,
    enabled  BOOLEAN NOT NULL,
    -- the rule's JSON (conditions, pattern, actions)
    rule     TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, rule_id)
);

-- A user's changes to the server-default rules (ids are unique across
-- kinds): NULL where the default stands.
CREATE TABLE push_rule_overrides (
    user_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    enabled BOOLEAN,
    -- a JSON array of actions
    actions TEXT,
    PRIMARY KEY (user_id, rule_id)
);

-- Events that notify a user, with the rules' outcome. stream_pos is the
-- event's stream position: the unread counts are the rows after the
-- user's read receipts.
CREATE TABLE push_actions (
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    -- the thread's root event id, or 'main'
    thread_id  TEXT NOT NULL,
    highlight  BOOLEAN NOT NULL,
    -- the matching rule's actions, a JSON array
    actions    TEXT NOT NULL,
    ts         BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, event_id)
);
-- Unread counts of one room.
CREATE INDEX push_actions_room ON push_actions (user_id, room_id, stream_pos);
-- /notifications, newest first.
CREATE INDEX push_actions_user ON push_actions (user_id, stream_pos);

-- Pushers (POST /pushers/set). The spec keys a pusher by app_id and
-- pushkey; several users may share one when they "append".
CREATE TABLE pushers (
    user_id             TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    pushkey             TEXT NOT NULL,
    kind                TEXT NOT NULL,
    app_display_name    TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag         TEXT NOT NULL,
    lang                TEXT NOT NULL,
    -- the pusher's data object (url, format...), JSON
    data                TEXT NOT NULL,
    -- the device whose access token made it: the pusher dies with it
    device_id           TEXT NOT NULL,
    created_ts          BIGINT NOT NULL,
    PRIMARY KEY (app_id, pushkey, user_id)
);
CREATE INDEX pushers_user ON pushers (user_id);

-- Notifications waiting for their push gateway: one row per pusher and
-- event, deleted once the gateway took it (or refused it for good).
CREATE TABLE push_queue (
    id          {{autoid}},
    user_id     TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    pushkey     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    -- failed attempts so far, and when to try next (Unix ms)
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_try_ts BIGINT NOT NULL,
    UNIQUE (app_id, pushkey, user_id, event_id)
);
CREATE INDEX push_queue_due ON push_queue (next_try_ts);
