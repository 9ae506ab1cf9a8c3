package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// Receipt is a user's latest receipt of one type (and thread) in a room.
type Receipt struct {
	RoomID, UserID, Type, ThreadID, EventID string
	// EventStreamPos is the roomserver stream position of the event, for
	// unread counts.
	EventStreamPos int64
	TS             int64
	// Pos is the receipts stream position of the receipt.
	Pos int64
}

// PutReceipt stores r as the user's latest of its type and thread in the
// room, unless the stored one is for a later event (receipts only move
// forward). It returns the receipt's stream position, 0 when nothing
// changed.
func (s *Store) PutReceipt(ctx context.Context, r Receipt) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var cur int64
		err := tx.QueryRowContext(ctx, `SELECT event_stream_pos FROM receipts WHERE room_id = $1 AND user_id = $2 AND receipt_type = $3 AND thread_id = $4`,
			r.RoomID, r.UserID, r.Type, r.ThreadID).Scan(&cur)
		switch {
		case err == nil && cur >= r.EventStreamPos:
			return nil
		case err != nil && err != sql.ErrNoRows:
			return err
		}
		if pos, err = nextPos(ctx, tx, StreamReceipts); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, event_stream_pos, ts, pos)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET event_id = excluded.event_id,
				event_stream_pos = excluded.event_stream_pos, ts = excluded.ts, pos = excluded.pos`,
			r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID, r.EventStreamPos, r.TS, pos)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store receipt of %s in %s: %w", r.UserID, r.RoomID, err)
	}
	return pos, nil
}

// ReceiptsSince returns the receipts of roomID with stream positions in
// (since, upTo].
func (s *Store) ReceiptsSince(ctx context.Context, roomID string, since, upTo int64) ([]Receipt, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT room_id, user_id, receipt_type, thread_id, event_id, event_stream_pos, ts, pos
		FROM receipts WHERE room_id = $1 AND pos > $2 AND pos <= $3`, roomID, since, upTo)
	if err != nil {
		return nil, fmt.Errorf("read receipts of %s: %w", roomID, err)
	}
	defer rows.Close()
	var out []Receipt
	for rows.Next() {
		var r Receipt
		if err := rows.Scan(&r.RoomID, &r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.EventStreamPos, &r.TS, &r.Pos); err != nil {
			return nil, fmt.Errorf("read receipts of %s: %w", roomID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RoomsWithReceiptsSince returns the rooms that have receipts with
// positions in (since, upTo].
func (s *Store) RoomsWithReceiptsSince(ctx context.Context, since, upTo int64) (map[string]bool, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT DISTINCT room_id FROM receipts WHERE pos > $1 AND pos <= $2`, since, upTo)
	if err != nil {
		return nil, fmt.Errorf("read rooms with receipts: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("read rooms with receipts: %w", err)
		}
		out[r] = true
	}
	return out, rows.Err()
}

// ReadPositions returns the roomserver stream positions of userID's
// latest unthreaded receipt (m.read or m.read.private) in roomID and of
// its threaded receipts per thread id, for unread counts.
func (s *Store) ReadPositions(ctx context.Context, userID, roomID string) (unthreaded int64, threads map[string]int64, err error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT thread_id, MAX(event_stream_pos) FROM receipts
		WHERE room_id = $1 AND user_id = $2 AND receipt_type IN ('m.read', 'm.read.private') GROUP BY thread_id`, roomID, userID)
	if err != nil {
		return 0, nil, fmt.Errorf("read receipts of %s in %s: %w", userID, roomID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var thread string
		var pos int64
		if err := rows.Scan(&thread, &pos); err != nil {
			return 0, nil, fmt.Errorf("read receipts of %s in %s: %w", userID, roomID, err)
		}
		if thread == "" {
			unthreaded = pos
			continue
		}
		if threads == nil {
			threads = map[string]int64{}
		}
		threads[thread] = pos
	}
	return unthreaded, threads, rows.Err()
}
