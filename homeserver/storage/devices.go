package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Device is a device as GET /devices shows it.
type Device struct {
	DeviceID    string
	DisplayName *string
	LastSeenTS  int64
	LastSeenIP  string
}

// Devices lists the devices of userID, oldest first.
func (s *Store) Devices(ctx context.Context, userID string) ([]Device, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT device_id, display_name, last_seen_ts, last_seen_ip
		FROM devices WHERE user_id = $1 ORDER BY created_ts, device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		if err := rows.Scan(&d.DeviceID, &d.DisplayName, &d.LastSeenTS, &d.LastSeenIP); err != nil {
			return nil, fmt.Errorf("scan device: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Device returns one device of userID, or ErrNotFound.
func (s *Store) Device(ctx context.Context, userID, deviceID string) (Device, error) {
	var d Device
	err := s.db.Read().QueryRowContext(ctx, `SELECT device_id, display_name, last_seen_ts, last_seen_ip
		FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID).
		Scan(&d.DeviceID, &d.DisplayName, &d.LastSeenTS, &d.LastSeenIP)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, ErrNotFound
	}
	if err != nil {
		return Device{}, fmt.Errorf("load device: %w", err)
	}
	return d, nil
}

// SetDeviceName renames a device; ErrNotFound if it does not exist.
func (s *Store) SetDeviceName(ctx context.Context, userID, deviceID, name string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET display_name = $1 WHERE user_id = $2 AND device_id = $3`, name, userID, deviceID)
		if err != nil {
			return fmt.Errorf("rename device: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// CreateDevice creates a device of userID with no token (an application
// service's device, MSC4190) and records the device-list change; a device
// that exists only takes the name, when name is not nil.
func (s *Store) CreateDevice(ctx context.Context, userID, deviceID string, name *string) error {
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET display_name = COALESCE($1, display_name) WHERE user_id = $2 AND device_id = $3`,
			name, userID, deviceID)
		if err != nil {
			return fmt.Errorf("rename device: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip)
			VALUES ($1, $2, $3, $4, $5, $6)`, userID, deviceID, name, now, now, ""); err != nil {
			return fmt.Errorf("insert device: %w", err)
		}
		return s.recordDeviceChange(ctx, tx, userID, deviceID, false, now)
	})
}

// DeleteDevices deletes the given devices of userID with their tokens, keys
// and pending to-device messages, and records a device-list change for
// each. Unknown device ids are ignored, as the spec asks.
func (s *Store) DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error {
	defer s.sessionsChanged()
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		return s.deleteDevices(ctx, tx, userID, deviceIDs, now)
	})
}

// deviceTables are the tables whose rows die with a device.
var deviceTables = []string{"access_tokens", "refresh_tokens", "device_keys", "one_time_keys", "fallback_keys", "device_inbox",
	"to_device_txns"}

func (s *Store) deleteDevices(ctx context.Context, tx *sql.Tx, userID string, deviceIDs []string, now int64) error {
	for _, id := range deviceIDs {
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id = $2`, userID, id)
		if err != nil {
			return fmt.Errorf("delete device: %w", err)
		}
		existed, _ := res.RowsAffected()
		if err := deleteDevicePushersTx(ctx, tx, userID, id); err != nil {
			return err
		}
		for _, table := range deviceTables {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE user_id = $1 AND device_id = $2`, userID, id); err != nil {
				return fmt.Errorf("delete %s of device: %w", table, err)
			}
		}
		// Cross-signatures of the device go too: a device logging in again
		// under the same id has new keys, which they do not sign.
		if _, err := tx.ExecContext(ctx, `DELETE FROM cross_signing_sigs WHERE target_user_id = $1 AND target_key_id = $2`, userID, id); err != nil {
			return fmt.Errorf("delete signatures of device: %w", err)
		}
		if existed > 0 {
			if err := s.recordDeviceChange(ctx, tx, userID, id, true, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func deviceIDs(ctx context.Context, tx *sql.Tx, userID string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT device_id FROM devices WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("list device ids: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan device id: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// recordDeviceChange appends to device_list_changes, which the E2EE relay
// publishes to the users and servers that share a room with userID.
func (s *Store) recordDeviceChange(ctx context.Context, tx *sql.Tx, userID, deviceID string, deleted bool, now int64) error {
	if err := s.db.Dialect.LockStream(ctx, tx, storage.StreamLockDeviceLists); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO device_list_changes (user_id, device_id, deleted, created_ts) VALUES ($1, $2, $3, $4)`,
		userID, deviceID, deleted, now); err != nil {
		return fmt.Errorf("record device-list change: %w", err)
	}
	return nil
}

// DeviceListChange is one row of the device-list change stream.
type DeviceListChange struct {
	StreamID int64
	UserID   string
	DeviceID string
	Deleted  bool
}

// DeviceListChanges returns changes after stream position since, in order.
func (s *Store) DeviceListChanges(ctx context.Context, since int64, limit int) ([]DeviceListChange, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT stream_id, user_id, device_id, deleted FROM device_list_changes
		WHERE stream_id > $1 ORDER BY stream_id LIMIT $2`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("list device-list changes: %w", err)
	}
	defer rows.Close()
	var out []DeviceListChange
	for rows.Next() {
		var c DeviceListChange
		if err := rows.Scan(&c.StreamID, &c.UserID, &c.DeviceID, &c.Deleted); err != nil {
			return nil, fmt.Errorf("scan device-list change: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ChangedUsers returns the users with a device-list change after stream
// position from and at or before to, sorted.
func (s *Store) ChangedUsers(ctx context.Context, from, to int64) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT DISTINCT user_id FROM device_list_changes
		WHERE stream_id > $1 AND stream_id <= $2 ORDER BY user_id`, from, to)
	if err != nil {
		return nil, fmt.Errorf("list changed users: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("scan changed user: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// DeviceListPos returns the latest position of the device-list change
// stream, 0 when it is empty.
func (s *Store) DeviceListPos(ctx context.Context) (int64, error) {
	var pos int64
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COALESCE(MAX(stream_id), 0) FROM device_list_changes`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("device-list position: %w", err)
	}
	return pos, nil
}
