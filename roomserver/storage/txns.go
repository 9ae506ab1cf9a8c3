package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// TxnEvent returns the nid of the event sender's device sent with a
// transaction id on an endpoint (scope), if there is one.
func (s *Store) TxnEvent(ctx context.Context, sender, deviceID, scope, txnID string) (nid int64, ok bool, err error) {
	err = s.db.Read().QueryRowContext(ctx, `SELECT event_nid FROM roomserver_txns
		WHERE sender = $1 AND device_id = $2 AND scope = $3 AND txn_id = $4`, sender, deviceID, scope, txnID).Scan(&nid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("look up transaction id: %w", err)
	}
	return nid, true, nil
}

// InsertTxn records, in the event's transaction, the transaction id it was
// sent with.
func (s *Store) InsertTxn(b *storage.Batch, sender, deviceID, scope, txnID string, eventNID int64) {
	b.InsertLater("roomserver_txns (sender, device_id, scope, txn_id, event_nid, created_ts)",
		sender, deviceID, scope, txnID, eventNID, time.Now().UnixMilli())
}
