package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
)

// TxnKey names one client transaction: a device's transaction id on one
// endpoint. The spec scopes transaction ids to a device and an endpoint,
// and calls a request a retry when its path is the same.
type TxnKey struct {
	UserID   string
	DeviceID string
	// Scope is the endpoint with its path parameters other than the
	// transaction id, e.g. "send !room:hs m.room.message".
	Scope string
	TxnID string
}

// The roomserver keeps transaction ids with the events they sent (a
// retry gets the first event back from it); the feeder copies them here
// as events reach the rooms stream, for unsigned.transaction_id.

// TxnEvent returns the event sent with key, once the rooms stream has it.
func (s *Store) TxnEvent(ctx context.Context, key TxnKey) (eventID string, ok bool, err error) {
	err = s.db.Read().QueryRowContext(ctx, `SELECT event_id FROM room_txns
		WHERE user_id = $1 AND device_id = $2 AND scope = $3 AND txn_id = $4 AND event_id <> ''`,
		key.UserID, key.DeviceID, key.Scope, key.TxnID).Scan(&eventID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up transaction id: %w", err)
	}
	return eventID, true, nil
}

// txnIDsBatch bounds the IN list of one TxnIDs query, well under both
// engines' parameter limits.
const txnIDsBatch = 500

// TxnIDs returns, for those of eventIDs that deviceID of userID sent with
// a transaction id, that id (for unsigned.transaction_id).
func (s *Store) TxnIDs(ctx context.Context, userID, deviceID string, eventIDs []string) (map[string]string, error) {
	out := map[string]string{}
	for len(eventIDs) > 0 {
		batch := eventIDs[:min(len(eventIDs), txnIDsBatch)]
		eventIDs = eventIDs[len(batch):]
		args := make([]any, 0, len(batch))
		for _, id := range batch {
			args = append(args, id)
		}
		// By event id alone, so that the event index is used: the
		// device's own rows can be many (every message it ever sent).
		rows, err := s.db.Read().QueryContext(ctx, `SELECT event_id, txn_id, user_id, device_id FROM room_txns
			WHERE event_id IN (`+dbstorage.Placeholders(1, len(batch))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("look up transaction ids: %w", err)
		}
		for rows.Next() {
			var ev, txn, user, device string
			if err := rows.Scan(&ev, &txn, &user, &device); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan transaction id: %w", err)
			}
			if user == userID && device == deviceID {
				out[ev] = txn
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("look up transaction ids: %w", err)
		}
	}
	return out, nil
}
