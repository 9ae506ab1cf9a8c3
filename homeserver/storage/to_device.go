package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// AllDevices as a ToDeviceMessage's DeviceID sends to every device of the
// user (the spec's "*").
const AllDevices = "*"

// ToDeviceMessage is one message for one local device (or AllDevices).
type ToDeviceMessage struct {
	UserID   string
	DeviceID string
	// JSON is what the device receives: {"sender", "type", "content"}.
	JSON string
}

// ToDeviceTxn names one PUT /sendToDevice request of a sender's device.
type ToDeviceTxn struct {
	UserID   string
	DeviceID string
	TxnID    string
}

// SendToDevice appends msgs to the target devices' inboxes, in order, and
// records txn in the same transaction. A txn already recorded sends
// nothing (duplicate is true): the request is a retry. Messages for
// devices that do not exist are dropped, as the spec allows. It returns the
// users who received at least one message, for waking their /sync.
func (s *Store) SendToDevice(ctx context.Context, txn ToDeviceTxn, msgs []ToDeviceMessage) (recipients []string, duplicate bool, err error) {
	now := s.nowMS()
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		recipients, duplicate = nil, false
		res, err := tx.ExecContext(ctx, `INSERT INTO to_device_txns (user_id, device_id, txn_id, created_ts)
			VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, device_id, txn_id) DO NOTHING`,
			txn.UserID, txn.DeviceID, txn.TxnID, now)
		if err != nil {
			return fmt.Errorf("record to-device transaction id: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			duplicate = true
			return nil
		}
		if err := s.db.Dialect.LockStream(ctx, tx, storage.StreamLockToDevice); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, m := range msgs {
			var res sql.Result
			if m.DeviceID == AllDevices {
				res, err = tx.ExecContext(ctx, `INSERT INTO device_inbox (user_id, device_id, message_json, created_ts)
					SELECT user_id, device_id, $1, $2 FROM devices WHERE user_id = $3 ORDER BY device_id`,
					m.JSON, now, m.UserID)
			} else {
				res, err = tx.ExecContext(ctx, `INSERT INTO device_inbox (user_id, device_id, message_json, created_ts)
					SELECT user_id, device_id, $1, $2 FROM devices WHERE user_id = $3 AND device_id = $4`,
					m.JSON, now, m.UserID, m.DeviceID)
			}
			if err != nil {
				return fmt.Errorf("queue to-device message: %w", err)
			}
			if n, _ := res.RowsAffected(); n > 0 && !seen[m.UserID] {
				seen[m.UserID] = true
				recipients = append(recipients, m.UserID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return recipients, duplicate, nil
}

// InboxMessage is a pending to-device message.
type InboxMessage struct {
	StreamID int64
	JSON     string
}

// Inbox returns up to limit pending to-device messages of deviceID of
// userID after stream position since, in order. /sync delivers them (and
// deletes what the device acknowledged); tests read them here.
func (s *Store) Inbox(ctx context.Context, userID, deviceID string, since int64, limit int) ([]InboxMessage, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT stream_id, message_json FROM device_inbox
		WHERE user_id = $1 AND device_id = $2 AND stream_id > $3 ORDER BY stream_id LIMIT $4`, userID, deviceID, since, limit)
	if err != nil {
		return nil, fmt.Errorf("read to-device inbox: %w", err)
	}
	defer rows.Close()
	var out []InboxMessage
	for rows.Next() {
		var m InboxMessage
		if err := rows.Scan(&m.StreamID, &m.JSON); err != nil {
			return nil, fmt.Errorf("scan to-device message: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ToDevicePos returns the latest position of the to-device stream.
func (s *Store) ToDevicePos(ctx context.Context) (int64, error) {
	var pos int64
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COALESCE(MAX(stream_id), 0) FROM device_inbox`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("to-device position: %w", err)
	}
	return pos, nil
}

// AckInbox deletes the to-device messages of deviceID of userID up to
// stream position upTo: the device acknowledged them by syncing past it.
// It writes only when there is something to delete.
func (s *Store) AckInbox(ctx context.Context, userID, deviceID string, upTo int64) error {
	var one int
	err := s.db.Read().QueryRowContext(ctx, `SELECT 1 FROM device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3 LIMIT 1`,
		userID, deviceID, upTo).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read acknowledged to-device messages: %w", err)
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3`,
			userID, deviceID, upTo); err != nil {
			return fmt.Errorf("delete acknowledged to-device messages: %w", err)
		}
		return nil
	})
}
