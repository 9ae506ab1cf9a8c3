package streams

import (
	"context"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// TxnIDs looks up the transaction ids of a device's events in the
// notifier's recent events first, then in the database: a client reading
// its event right after the send (which waits for the notifier, not for
// the feeder's write) finds its id there before the feeder has written
// it. It implements events.TxnIDs.
type TxnIDs struct {
	Notifier *Notifier
	Store    *storage.Store
}

// TxnIDs returns, for those of eventIDs that deviceID of userID sent with
// a transaction id, that id.
func (t TxnIDs) TxnIDs(ctx context.Context, userID, deviceID string, eventIDs []string) (map[string]string, error) {
	ids, rest := t.Notifier.RecentTxnIDs(userID, deviceID, eventIDs)
	if len(rest) == 0 {
		return ids, nil
	}
	older, err := t.Store.TxnIDs(ctx, userID, deviceID, rest)
	if err != nil {
		return nil, err
	}
	for id, txn := range older {
		ids[id] = txn
	}
	return ids, nil
}
