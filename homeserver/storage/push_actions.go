package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
)

// MainThread is the thread id of events outside any thread.
const MainThread = "main"

// PushAction is what a user's push rules made of one event that notifies
// them.
type PushAction struct {
	UserID    string
	RoomID    string
	EventID   string
	StreamPos int64
	// ThreadID is the thread's root event id, or MainThread.
	ThreadID  string
	Highlight bool
	// Actions are the matching rule's actions, a JSON array.
	Actions json.RawMessage
	// TS is when the action was recorded (Unix ms).
	TS int64
}

// pushActionsBatch bounds the rows of one statement (8 parameters
// each), well under both engines' parameter limits.
const pushActionsBatch = 500

// AddPushActions records actions (of one event or several), and queues
// each new one for the http pushers of its user, in one transaction: one
// statement per 500 actions and one per event to queue. A row already there (the same event replayed) is left as
// it is and not queued again. queued says whether anything was queued
// for a pusher.
func (s *Store) AddPushActions(ctx context.Context, actions []PushAction) (queued bool, err error) {
	if len(actions) == 0 {
		return false, nil
	}
	now := s.nowMS()
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		queued = false
		type key struct{ user, room, event string }
		var inserted []key
		for rest := actions; len(rest) > 0; {
			chunk := rest[:min(len(rest), pushActionsBatch)]
			rest = rest[len(chunk):]
			const cols = 8
			var b strings.Builder
			args := make([]any, 0, len(chunk)*cols)
			b.WriteString(`INSERT INTO push_actions (user_id, room_id, event_id, stream_pos, thread_id, highlight, actions, ts) VALUES `)
			for i, a := range chunk {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString("(" + dbstorage.Placeholders(i*cols+1, cols) + ")")
				ts := a.TS
				if ts == 0 {
					ts = now
				}
				args = append(args, a.UserID, a.RoomID, a.EventID, a.StreamPos, a.ThreadID, a.Highlight, string(a.Actions), ts)
			}
			b.WriteString(` ON CONFLICT (user_id, room_id, event_id) DO NOTHING RETURNING user_id, room_id, event_id`)
			rows, err := tx.QueryContext(ctx, b.String(), args...)
			if err != nil {
				return fmt.Errorf("insert push actions: %w", err)
			}
			for rows.Next() {
				var k key
				if err := rows.Scan(&k.user, &k.room, &k.event); err != nil {
					rows.Close()
					return fmt.Errorf("scan inserted push action: %w", err)
				}
				inserted = append(inserted, k)
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return fmt.Errorf("insert push actions: %w", err)
			}
		}
		// One statement queues an event for all its users; events are
		// queued in the order given (stream order), which the queue's
		// ids keep.
		byEvent := map[[2]string][]any{}
		var order [][2]string
		for _, k := range inserted {
			e := [2]string{k.room, k.event}
			if _, ok := byEvent[e]; !ok {
				order = append(order, e)
			}
			byEvent[e] = append(byEvent[e], k.user)
		}
		for _, e := range order {
			all := byEvent[e]
			for len(all) > 0 {
				users := all[:min(len(all), pushActionsBatch)]
				all = all[len(users):]
				qargs := append([]any{e[0], e[1], now}, users...)
				res, err := tx.ExecContext(ctx, `INSERT INTO push_queue (user_id, app_id, pushkey, room_id, event_id, next_try_ts)
				SELECT user_id, app_id, pushkey, CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT) FROM pushers
				WHERE kind = 'http' AND user_id IN (`+dbstorage.Placeholders(4, len(users))+`)
				ON CONFLICT (app_id, pushkey, user_id, event_id) DO NOTHING`, qargs...)
				if err != nil {
					return fmt.Errorf("queue push: %w", err)
				}
				if n, _ := res.RowsAffected(); n > 0 {
					queued = true
				}
			}
		}
		return nil
	})
	return queued, err
}

// Counts are unread notification and highlight counts.
type Counts struct{ Notifications, Highlights int }

// UnreadCounts returns userID's unread counts in roomID: in total and per
// thread (MainThread for the main timeline; threads without unread
// notifications are left out). unthreaded is the stream position of the
// user's latest unthreaded receipt (m.read or m.read.private) in the
// room, threads the position of the latest threaded receipt per thread id;
// an action is unread when its position is greater than both. For sync's
// unread_notifications without threaded notifications use total; with
// them, perThread[MainThread] and the rest as unread_thread_notifications.
func (s *Store) UnreadCounts(ctx context.Context, userID, roomID string, unthreaded int64, threads map[string]int64) (total Counts, perThread map[string]Counts, err error) {
	return s.UnreadCountsUpTo(ctx, userID, roomID, unthreaded, threads, math.MaxInt64)
}

// UnreadCountsUpTo is UnreadCounts counting only the actions of events at
// or before stream position upTo (those sync knows to be written).
func (s *Store) UnreadCountsUpTo(ctx context.Context, userID, roomID string, unthreaded int64, threads map[string]int64, upTo int64) (total Counts, perThread map[string]Counts, err error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT thread_id, COUNT(*), SUM(CASE WHEN highlight THEN 1 ELSE 0 END)
		FROM push_actions WHERE user_id = $1 AND room_id = $2 AND stream_pos > $3 AND stream_pos <= $4 GROUP BY thread_id`,
		userID, roomID, unthreaded, upTo)
	if err != nil {
		return Counts{}, nil, fmt.Errorf("count unread notifications: %w", err)
	}
	perThread = map[string]Counts{}
	for rows.Next() {
		var thread string
		var c Counts
		if err := rows.Scan(&thread, &c.Notifications, &c.Highlights); err != nil {
			rows.Close()
			return Counts{}, nil, fmt.Errorf("scan unread notifications: %w", err)
		}
		perThread[thread] = c
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return Counts{}, nil, fmt.Errorf("count unread notifications: %w", err)
	}
	// A thread read further than the unthreaded receipt is counted again
	// from its own receipt (few threads have one: one query each).
	for thread, pos := range threads {
		if _, ok := perThread[thread]; !ok || pos <= unthreaded {
			continue
		}
		var c Counts
		var hl sql.NullInt64
		if err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*), SUM(CASE WHEN highlight THEN 1 ELSE 0 END)
			FROM push_actions WHERE user_id = $1 AND room_id = $2 AND thread_id = $3 AND stream_pos > $4 AND stream_pos <= $5`,
			userID, roomID, thread, pos, upTo).Scan(&c.Notifications, &hl); err != nil {
			return Counts{}, nil, fmt.Errorf("count unread notifications of a thread: %w", err)
		}
		c.Highlights = int(hl.Int64)
		if c.Notifications == 0 {
			delete(perThread, thread)
		} else {
			perThread[thread] = c
		}
	}
	for _, c := range perThread {
		total.Notifications += c.Notifications
		total.Highlights += c.Highlights
	}
	return total, perThread, nil
}

// PushActions returns up to limit of userID's actions, newest first,
// from stream position before (not included; 0: from the newest), only
// highlights when onlyHighlight.
func (s *Store) PushActions(ctx context.Context, userID string, before int64, limit int, onlyHighlight bool) ([]PushAction, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	q := `SELECT room_id, event_id, stream_pos, thread_id, highlight, actions, ts FROM push_actions
		WHERE user_id = $1 AND stream_pos < $2`
	if onlyHighlight {
		q += ` AND highlight`
	}
	q += ` ORDER BY stream_pos DESC, room_id LIMIT $3`
	rows, err := s.db.Read().QueryContext(ctx, q, userID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("read push actions: %w", err)
	}
	defer rows.Close()
	var out []PushAction
	for rows.Next() {
		a := PushAction{UserID: userID}
		var actions string
		if err := rows.Scan(&a.RoomID, &a.EventID, &a.StreamPos, &a.ThreadID, &a.Highlight, &actions, &a.TS); err != nil {
			return nil, fmt.Errorf("scan push action: %w", err)
		}
		a.Actions = json.RawMessage(actions)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read push actions: %w", err)
	}
	return out, nil
}

// PushActionRooms returns the rooms where userID has push actions, for
// the unread badge of push notifications.
func (s *Store) PushActionRooms(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT DISTINCT room_id FROM push_actions WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("read push action rooms: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("scan push action room: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read push action rooms: %w", err)
	}
	return out, nil
}

// PrunePushActions deletes up to limit push actions that serve no more:
// non-highlights recorded before readBefore (Unix ms) that the user has
// read (an unthreaded receipt, or one of their thread, at or after them),
// and any recorded before highlightBefore. Actions still queued for a
// pusher stay. It returns how many went.
func (s *Store) PrunePushActions(ctx context.Context, readBefore, highlightBefore int64, limit int) (int64, error) {
	var n int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM push_actions WHERE (user_id, room_id, event_id) IN (
			SELECT a.user_id, a.room_id, a.event_id FROM push_actions a
			WHERE (a.ts < $1 AND NOT a.highlight AND EXISTS (SELECT 1 FROM receipts r
					WHERE r.room_id = a.room_id AND r.user_id = a.user_id AND r.receipt_type IN ('m.read', 'm.read.private')
					AND r.thread_id IN ('', a.thread_id) AND r.event_stream_pos >= a.stream_pos)
				OR a.ts < $2)
			AND NOT EXISTS (SELECT 1 FROM push_queue q WHERE q.user_id = a.user_id AND q.room_id = a.room_id AND q.event_id = a.event_id)
			LIMIT $3)`, readBefore, highlightBefore, limit)
		if err != nil {
			return fmt.Errorf("prune push actions: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}
