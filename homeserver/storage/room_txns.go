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

// ReserveTxn claims key for a request that is about to send an event into
// roomID. It returns:
//   - the event id, when a request with this key has already completed;
//   - owned, when the caller now holds the reservation and must end it
//     with CompleteTxn or ReleaseTxn;
//   - neither, when another request holds a reservation made at or after
//     staleBefore (Unix ms): the caller should wait and ask again.
//
// A reservation older than staleBefore is taken over: the request that
// made it is presumed dead (a crash between reserving and completing).
func (s *Store) ReserveTxn(ctx context.Context, key TxnKey, roomID string, staleBefore int64) (eventID string, owned bool, err error) {
	now := s.nowMS()
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		// On PostgreSQL a concurrent reservation of the same key makes
		// this wait for the other transaction, which commits at once.
		res, err := tx.ExecContext(ctx, `INSERT INTO room_txns (user_id, device_id, scope, txn_id, room_id, event_id, created_ts)
			VALUES ($1, $2, $3, $4, $5, '', $6) ON CONFLICT (user_id, device_id, scope, txn_id) DO NOTHING`,
			key.UserID, key.DeviceID, key.Scope, key.TxnID, roomID, now)
		if err != nil {
			return fmt.Errorf("reserve transaction id: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			owned = true
			return nil
		}
		var created int64
		err = tx.QueryRowContext(ctx, `SELECT event_id, created_ts FROM room_txns
			WHERE user_id = $1 AND device_id = $2 AND scope = $3 AND txn_id = $4`,
			key.UserID, key.DeviceID, key.Scope, key.TxnID).Scan(&eventID, &created)
		if errors.Is(err, sql.ErrNoRows) {
			// Released between our insert and this read: the caller asks
			// again.
			return nil
		}
		if err != nil {
			return fmt.Errorf("read transaction id: %w", err)
		}
		if eventID != "" || created >= staleBefore {
			return nil
		}
		res, err = tx.ExecContext(ctx, `UPDATE room_txns SET created_ts = $1
			WHERE user_id = $2 AND device_id = $3 AND scope = $4 AND txn_id = $5 AND event_id = '' AND created_ts = $6`,
			now, key.UserID, key.DeviceID, key.Scope, key.TxnID, created)
		if err != nil {
			return fmt.Errorf("take over stale transaction id: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			owned = true
		}
		return nil
	})
	if err != nil {
		return "", false, err
	}
	return eventID, owned, nil
}

// CompleteTxn records the event id sent under a reservation that
// ReserveTxn gave the caller.
func (s *Store) CompleteTxn(ctx context.Context, key TxnKey, eventID string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE room_txns SET event_id = $1
			WHERE user_id = $2 AND device_id = $3 AND scope = $4 AND txn_id = $5`,
			eventID, key.UserID, key.DeviceID, key.Scope, key.TxnID); err != nil {
			return fmt.Errorf("complete transaction id: %w", err)
		}
		return nil
	})
}

// ReleaseTxn drops a reservation whose request failed, so that a retry
// sends again.
func (s *Store) ReleaseTxn(ctx context.Context, key TxnKey) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM room_txns
			WHERE user_id = $1 AND device_id = $2 AND scope = $3 AND txn_id = $4 AND event_id = ''`,
			key.UserID, key.DeviceID, key.Scope, key.TxnID); err != nil {
			return fmt.Errorf("release transaction id: %w", err)
		}
		return nil
	})
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
