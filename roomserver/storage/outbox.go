package storage

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// OutboxEntry is an accepted event waiting to be published: its output
// event's JSON (an api.OutputEvent). RoomID and EventID are set when the
// entry is handed from the input path, empty when read from the table.
type OutboxEntry struct {
	EventNID        int64
	JSON            []byte
	RoomID, EventID string
}

// AddToOutbox queues an output event, in the event's own transaction
// (written with the other rows of its batch: storage.Batch).
func (s *Store) AddToOutbox(b *storage.Batch, eventNID int64, outputJSON []byte) {
	b.InsertLater("roomserver_outbox (event_nid, output_json)", eventNID, string(outputJSON))
}

// Outbox returns up to limit queued output events, oldest first.
func (s *Store) Outbox(ctx context.Context, limit int) ([]OutboxEntry, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT event_nid, output_json FROM roomserver_outbox ORDER BY event_nid LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxEntry
	for rows.Next() {
		var e OutboxEntry
		var js string
		if err := rows.Scan(&e.EventNID, &js); err != nil {
			return nil, fmt.Errorf("scan outbox: %w", err)
		}
		e.JSON = []byte(js)
		out = append(out, e)
	}
	return out, rows.Err()
}

// RemoveFromOutbox deletes published entries, in one transaction.
func (s *Store) RemoveFromOutbox(ctx context.Context, eventNIDs []int64) error {
	if len(eventNIDs) == 0 {
		return nil
	}
	args := make([]any, len(eventNIDs))
	for i, n := range eventNIDs {
		args[i] = n
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM roomserver_outbox WHERE event_nid IN (`+storage.Placeholders(1, len(args))+`)`, args...); err != nil {
			return fmt.Errorf("remove from outbox: %w", err)
		}
		return nil
	})
}
