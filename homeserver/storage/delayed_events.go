package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// DelayedEvent is an event waiting to be sent (MSC4140).
type DelayedEvent struct {
	DelayID  string
	UserID   string
	DeviceID string
	RoomID   string
	Type     string
	// StateKey is nil for a message event.
	StateKey *string
	Content  json.RawMessage
	// DelayMS is the delay asked for; the event is due at
	// RunningSince + DelayMS (ms).
	DelayMS      int64
	RunningSince int64
}

// SendTS is when the event is due (ms).
func (d DelayedEvent) SendTS() int64 { return d.RunningSince + d.DelayMS }

const delayedColumns = `delay_id, user_id, device_id, room_id, event_type, state_key, content, delay_ms, running_since`

func scanDelayed(rows *sql.Rows) ([]DelayedEvent, error) {
	defer rows.Close()
	var out []DelayedEvent
	for rows.Next() {
		var d DelayedEvent
		var content string
		if err := rows.Scan(&d.DelayID, &d.UserID, &d.DeviceID, &d.RoomID, &d.Type, &d.StateKey, &content, &d.DelayMS, &d.RunningSince); err != nil {
			return nil, fmt.Errorf("read delayed events: %w", err)
		}
		d.Content = json.RawMessage(content)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read delayed events: %w", err)
	}
	return out, nil
}

// AddDelayedEvent stores a delayed event.
func (s *Store) AddDelayedEvent(ctx context.Context, d DelayedEvent) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO delayed_events (`+delayedColumns+`, send_ts)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			d.DelayID, d.UserID, d.DeviceID, d.RoomID, d.Type, d.StateKey, string(d.Content), d.DelayMS, d.RunningSince, d.SendTS())
		if err != nil {
			return fmt.Errorf("store delayed event: %w", err)
		}
		return nil
	})
}

// DelayedEventsOf returns userID's delayed events, soonest first.
func (s *Store) DelayedEventsOf(ctx context.Context, userID string) ([]DelayedEvent, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+delayedColumns+` FROM delayed_events WHERE user_id = $1 ORDER BY send_ts, delay_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("read delayed events: %w", err)
	}
	return scanDelayed(rows)
}

// DueDelayedEvents returns up to limit delayed events due at nowTS,
// soonest first.
func (s *Store) DueDelayedEvents(ctx context.Context, nowTS int64, limit int) ([]DelayedEvent, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+delayedColumns+` FROM delayed_events WHERE send_ts <= $1 ORDER BY send_ts, delay_id LIMIT $2`, nowTS, limit)
	if err != nil {
		return nil, fmt.Errorf("read due delayed events: %w", err)
	}
	return scanDelayed(rows)
}

// NextDelayedEventTS returns when the next delayed event is due (ms);
// ok is false when none waits.
func (s *Store) NextDelayedEventTS(ctx context.Context) (ts int64, ok bool, err error) {
	var next sql.NullInt64
	if err := s.db.Read().QueryRowContext(ctx, `SELECT MIN(send_ts) FROM delayed_events`).Scan(&next); err != nil {
		return 0, false, fmt.Errorf("read next delayed event: %w", err)
	}
	return next.Int64, next.Valid, nil
}

// TakeDelayedEvent removes userID's delayed event delayID and returns it
// (ErrNotFound when there is none: unknown, someone else's, or already
// sent or cancelled). userID "" takes anyone's (the scheduler).
func (s *Store) TakeDelayedEvent(ctx context.Context, userID, delayID string) (DelayedEvent, error) {
	var out []DelayedEvent
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM delayed_events WHERE delay_id = $1 AND (user_id = $2 OR $3 = '')
			RETURNING `+delayedColumns, delayID, userID, userID)
		if err != nil {
			return fmt.Errorf("take delayed event: %w", err)
		}
		out, err = scanDelayed(rows)
		return err
	})
	if err != nil {
		return DelayedEvent{}, err
	}
	if len(out) == 0 {
		return DelayedEvent{}, ErrNotFound
	}
	return out[0], nil
}

// RestartDelayedEvent restarts userID's delayed event's delay from nowTS;
// ErrNotFound when there is no such event.
func (s *Store) RestartDelayedEvent(ctx context.Context, userID, delayID string, nowTS int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE delayed_events SET running_since = $1, send_ts = $2 + delay_ms
			WHERE delay_id = $3 AND user_id = $4`, nowTS, nowTS, delayID, userID)
		if err != nil {
			return fmt.Errorf("restart delayed event: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// CountDelayedEvents counts userID's delayed events.
func (s *Store) CountDelayedEvents(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM delayed_events WHERE user_id = $1`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count delayed events: %w", err)
	}
	return n, nil
}

// CancelDelayedState drops the delayed state events for (roomID, typ,
// stateKey) of every user but sender: a state event sent by someone else
// overwrote the state they were meant to change (MSC4140).
func (s *Store) CancelDelayedState(ctx context.Context, roomID, typ, stateKey, sender string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM delayed_events WHERE room_id = $1 AND event_type = $2 AND state_key = $3 AND user_id <> $4`,
			roomID, typ, stateKey, sender); err != nil {
			return fmt.Errorf("cancel overwritten delayed state: %w", err)
		}
		return nil
	})
}
