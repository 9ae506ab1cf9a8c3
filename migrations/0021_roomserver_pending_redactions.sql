-- Redactions accepted before the event they redact arrived (a message
-- redacted before this server joined the room, fetched later from
-- another server's history): the redaction applies to the event when it
-- comes, as the spec asks servers to apply a redaction once they have
-- both events.
CREATE TABLE roomserver_pending_redactions (
    target_id    TEXT NOT NULL,
    redaction_id TEXT NOT NULL,
    room_nid     BIGINT NOT NULL,
    -- the redaction's sender, whose right to redact is checked when the
    -- event comes
    sender       TEXT NOT NULL,
    PRIMARY KEY (target_id, redaction_id)
);
