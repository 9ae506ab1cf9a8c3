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

// ClaimDuePushes claims up to limit queued notifications due at now (Unix
// ms), in stream order, and returns them: each is postponed to now+leaseMS
// in the same transaction, so that another process's Sender does not
// send it too. The caller deletes a row once sent (DeleteQueuedPush) or
// postpones its pusher (DelayPusher); a process that dies meanwhile
// leaves the row to be claimed again when the lease ends.
func (s *Store) ClaimDuePushes(ctx context.Context, now, leaseMS int64, limit int) ([]QueuedPush, error) {
	var out []QueuedPush
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT q.id, q.attempts, q.room_id, q.event_id,
			p.user_id, p.app_id, p.pushkey, p.kind, p.app_display_name, p.device_display_name, p.profile_tag, p.lang, p.data, p.device_id, p.created_ts,
			a.stream_pos, a.thread_id, a.highlight, a.actions, a.ts
			FROM push_queue q
			JOIN pushers p ON p.app_id = q.app_id AND p.pushkey = q.pushkey AND p.user_id = q.user_id
			JOIN push_actions a ON a.user_id = q.user_id AND a.room_id = q.room_id AND a.event_id = q.event_id
			WHERE q.next_try_ts <= $1 ORDER BY a.stream_pos, q.id LIMIT $2`, now, limit)
		if err != nil {
			return fmt.Errorf("read push queue: %w", err)
		}
		var due []QueuedPush
		for rows.Next() {
			var q QueuedPush
			var data, actions string
			p, a := &q.Pusher, &q.Action
			if err := rows.Scan(&q.ID, &q.Attempts, &a.RoomID, &a.EventID,
				&p.UserID, &p.AppID, &p.PushKey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.DeviceID, &p.CreatedTS,
				&a.StreamPos, &a.ThreadID, &a.Highlight, &actions, &a.TS); err != nil {
				rows.Close()
				return fmt.Errorf("scan push queue: %w", err)
			}
			p.Data, a.Actions, a.UserID = json.RawMessage(data), json.RawMessage(actions), p.UserID
			due = append(due, q)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("read push queue: %w", err)
		}
		// On PostgreSQL a concurrent claim of the same rows waits here
		// and then finds them no longer due: each row goes to one Sender.
		for _, q := range due {
			res, err := tx.ExecContext(ctx, `UPDATE push_queue SET next_try_ts = $1 WHERE id = $2 AND next_try_ts <= $3`,
				now+leaseMS, q.ID, now)
			if err != nil {
				return fmt.Errorf("claim queued push: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				out = append(out, q)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// NextPushDue returns when the earliest queued notification that
// ClaimDuePushes would return is due (Unix ms); ok is false when there is
// none.
func (s *Store) NextPushDue(ctx context.Context) (ts int64, ok bool, err error) {
	var next sql.NullInt64
	if err := s.db.Read().QueryRowContext(ctx, `SELECT MIN(q.next_try_ts) FROM push_queue q
		JOIN pushers p ON p.app_id = q.app_id AND p.pushkey = q.pushkey AND p.user_id = q.user_id
		JOIN push_actions a ON a.user_id = q.user_id AND a.room_id = q.room_id AND a.event_id = q.event_id`).Scan(&next); err != nil {
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
