package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// QueuedPush is one notification waiting for a push gateway, with what
// sending it needs: the pusher and the push action.
type QueuedPush struct {
	ID       int64
	Attempts int
	Pusher   Pusher
	Action   PushAction
}

// DuePushes returns up to limit queued notifications due at now (Unix
// ms), oldest first.
func (s *Store) DuePushes(ctx context.Context, now int64, limit int) ([]QueuedPush, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT q.id, q.attempts, q.room_id, q.event_id,
		p.user_id, p.app_id, p.pushkey, p.kind, p.app_display_name, p.device_display_name, p.profile_tag, p.lang, p.data, p.device_id, p.created_ts,
		a.stream_pos, a.thread_id, a.highlight, a.actions, a.ts
		FROM push_queue q
		JOIN pushers p ON p.app_id = q.app_id AND p.pushkey = q.pushkey AND p.user_id = q.user_id
		JOIN push_actions a ON a.user_id = q.user_id AND a.room_id = q.room_id AND a.event_id = q.event_id
		WHERE q.next_try_ts <= $1 ORDER BY q.id LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("read push queue: %w", err)
	}
	defer rows.Close()
	var out []QueuedPush
	for rows.Next() {
		var q QueuedPush
		var data, actions string
		p, a := &q.Pusher, &q.Action
		if err := rows.Scan(&q.ID, &q.Attempts, &a.RoomID, &a.EventID,
			&p.UserID, &p.AppID, &p.PushKey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.DeviceID, &p.CreatedTS,
			&a.StreamPos, &a.ThreadID, &a.Highlight, &actions, &a.TS); err != nil {
			return nil, fmt.Errorf("scan push queue: %w", err)
		}
		p.Data, a.Actions, a.UserID = json.RawMessage(data), json.RawMessage(actions), p.UserID
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read push queue: %w", err)
	}
	return out, nil
}

// NextPushDue returns when the earliest queued notification that
// DuePushes would return is due (Unix ms); ok is false when there is
// none.
func (s *Store) NextPushDue(ctx context.Context) (ts int64, ok bool, err error) {
	var next sql.NullInt64
	if err := s.db.Read().QueryRowContext(ctx, `SELECT MIN(q.next_try_ts) FROM push_queue q
		JOIN pushers p ON p.app_id = q.app_id AND p.pushkey = q.pushkey AND p.user_id = q.user_id`).Scan(&next); err != nil {
		return 0, false, fmt.Errorf("read push queue: %w", err)
	}
	return next.Int64, next.Valid, nil
}

// DeleteQueuedPush removes a notification the gateway took, or that is
// given up.
func (s *Store) DeleteQueuedPush(ctx context.Context, id int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM push_queue WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete queued push: %w", err)
		}
		return nil
	})
}

// DelayPusher postpones every notification queued for one pusher to
// nextTry (Unix ms) and counts a failed attempt, so that a pusher's
// notifications keep their order across retries.
func (s *Store) DelayPusher(ctx context.Context, userID, appID, pushKey string, nextTry int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE push_queue SET attempts = attempts + 1, next_try_ts = $1
			WHERE user_id = $2 AND app_id = $3 AND pushkey = $4`, nextTry, userID, appID, pushKey); err != nil {
			return fmt.Errorf("delay pusher: %w", err)
		}
		return nil
	})
}
