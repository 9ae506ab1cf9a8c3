package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Device-list changes of other servers' users, from their
// m.device_list_update EDUs: a row in device_list_changes, so that the
// local users who share a room with them see device_lists.changed, and
// the joins that tell who shares a room with whom; and the copy of their
// device lists (remote_device_lists, remote_devices).

// RecordRemoteDeviceChange appends a change of a remote user's device to
// the device-list stream and returns its position.
func (s *Store) RecordRemoteDeviceChange(ctx context.Context, userID, deviceID string, deleted bool) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		if err := s.recordDeviceChange(ctx, tx, userID, deviceID, deleted, s.nowMS()); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT MAX(stream_id) FROM device_list_changes`).Scan(&pos)
	})
	if err != nil {
		return 0, fmt.Errorf("record device-list change of %s: %w", userID, err)
	}
	return pos, nil
}

// LatestDeviceChange returns the last device-list change of userID and
// the stream id of the one before it (0 for none), or ErrNotFound: other
// servers are told of each change with the one before it (prev_id), so
// that they can tell when they missed one.
func (s *Store) LatestDeviceChange(ctx context.Context, userID string) (c DeviceListChange, prevStreamID int64, err error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT stream_id, user_id, device_id, deleted FROM device_list_changes
		WHERE user_id = $1 ORDER BY stream_id DESC LIMIT 2`, userID)
	if err != nil {
		return DeviceListChange{}, 0, fmt.Errorf("last device-list change of %s: %w", userID, err)
	}
	defer rows.Close()
	var got []DeviceListChange
	for rows.Next() {
		var r DeviceListChange
		if err := rows.Scan(&r.StreamID, &r.UserID, &r.DeviceID, &r.Deleted); err != nil {
			return DeviceListChange{}, 0, fmt.Errorf("scan device-list change: %w", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return DeviceListChange{}, 0, fmt.Errorf("last device-list change of %s: %w", userID, err)
	}
	switch len(got) {
	case 0:
		return DeviceListChange{}, 0, ErrNotFound
	case 1:
		return got[0], 0, nil
	}
	return got[0], got[1].StreamID, nil
}

// JoinedRoomsOf returns the rooms where userID (of any server) is joined,
// as the rooms stream has it.
func (s *Store) JoinedRoomsOf(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT room_id FROM sync_memberships WHERE user_id = $1 AND membership = 'join' ORDER BY room_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("joined rooms of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("scan room id: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ShareJoinedRoom reports whether users a and b are both joined to some
// room, as the rooms stream has it.
func (s *Store) ShareJoinedRoom(ctx context.Context, a, b string) (bool, error) {
	var one int
	err := s.db.Read().QueryRowContext(ctx, `SELECT 1 FROM sync_memberships x JOIN sync_memberships y ON x.room_id = y.room_id
		WHERE x.user_id = $1 AND y.user_id = $2 AND x.membership = 'join' AND y.membership = 'join' LIMIT 1`, a, b).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("do %s and %s share a room: %w", a, b, err)
	}
	return true, nil
}

// RemoteDeviceList is the copy of a remote user's device list.
type RemoteDeviceList struct {
	UserID string
	// StreamID is the last of the user's server's device-list stream ids
	// applied.
	StreamID int64
	// Stale: the list is to be fetched again before it is used.
	Stale          bool
	MasterKey      json.RawMessage
	SelfSigningKey json.RawMessage
	// Devices maps device ids to their signed device keys (nil when the
	// server gave none).
	Devices map[string]json.RawMessage
}

// RemoteDeviceList returns the copy of userID's device list, or
// ErrNotFound when there is none.
func (s *Store) RemoteDeviceList(ctx context.Context, userID string) (RemoteDeviceList, error) {
	l := RemoteDeviceList{UserID: userID, Devices: map[string]json.RawMessage{}}
	var master, self string
	err := s.db.Read().QueryRowContext(ctx, `SELECT stream_id, stale, master_key, self_signing_key FROM remote_device_lists WHERE user_id = $1`,
		userID).Scan(&l.StreamID, &l.Stale, &master, &self)
	if errors.Is(err, sql.ErrNoRows) {
		return RemoteDeviceList{}, ErrNotFound
	}
	if err != nil {
		return RemoteDeviceList{}, fmt.Errorf("device list of %s: %w", userID, err)
	}
	l.MasterKey, l.SelfSigningKey = rawOrNil(master), rawOrNil(self)
	rows, err := s.db.Read().QueryContext(ctx, `SELECT device_id, device_keys FROM remote_devices WHERE user_id = $1`, userID)
	if err != nil {
		return RemoteDeviceList{}, fmt.Errorf("devices of %s: %w", userID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, keys string
		if err := rows.Scan(&id, &keys); err != nil {
			return RemoteDeviceList{}, fmt.Errorf("scan device of %s: %w", userID, err)
		}
		l.Devices[id] = rawOrNil(keys)
	}
	return l, rows.Err()
}

// rawOrNil is s as raw JSON, nil when empty.
func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// ReplaceRemoteDeviceList stores l whole (a /user/devices answer), fresh.
func (s *Store) ReplaceRemoteDeviceList(ctx context.Context, l RemoteDeviceList) error {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO remote_device_lists (user_id, stream_id, stale, master_key, self_signing_key)
			VALUES ($1, $2, FALSE, $3, $4) ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id, stale = FALSE,
			master_key = excluded.master_key, self_signing_key = excluded.self_signing_key`,
			l.UserID, l.StreamID, string(l.MasterKey), string(l.SelfSigningKey)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM remote_devices WHERE user_id = $1`, l.UserID); err != nil {
			return err
		}
		for id, keys := range l.Devices {
			if _, err := tx.ExecContext(ctx, `INSERT INTO remote_devices (user_id, device_id, device_keys) VALUES ($1, $2, $3)`,
				l.UserID, id, string(keys)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store device list of %s: %w", l.UserID, err)
	}
	return nil
}

// ApplyRemoteDeviceChange applies one change of a remote user's device
// (an m.device_list_update EDU) to the copy of their list, if the copy
// is still at fromStreamID; it reports whether it was (another change
// applied meanwhile loses this one: the caller fetches the list again).
// A change without keys keeps the keys the copy had for the device.
func (s *Store) ApplyRemoteDeviceChange(ctx context.Context, userID, deviceID string, keys json.RawMessage, deleted bool, fromStreamID, streamID int64) (bool, error) {
	applied := false
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE remote_device_lists SET stream_id = $1 WHERE user_id = $2 AND stream_id = $3 AND NOT stale`,
			streamID, userID, fromStreamID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		applied = true
		if deleted {
			_, err = tx.ExecContext(ctx, `DELETE FROM remote_devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID)
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO remote_devices (user_id, device_id, device_keys) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, device_id) DO UPDATE SET device_keys = CASE WHEN excluded.device_keys = '' THEN remote_devices.device_keys
				ELSE excluded.device_keys END`, userID, deviceID, string(keys))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("apply device change of %s: %w", userID, err)
	}
	return applied, nil
}

// SetRemoteCrossSigningKeys updates the cross-signing keys in the copy of
// a remote user's device list (an m.signing_key_update EDU); nil keeps a
// key. Without a copy, nothing is done.
func (s *Store) SetRemoteCrossSigningKeys(ctx context.Context, userID string, master, selfSigning json.RawMessage) error {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		for col, key := range map[string]json.RawMessage{"master_key": master, "self_signing_key": selfSigning} {
			if key == nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE remote_device_lists SET `+col+` = $1 WHERE user_id = $2`, string(key), userID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store cross-signing keys of %s: %w", userID, err)
	}
	return nil
}

// MarkRemoteDeviceListStale marks the copy of userID's device list (if
// any) to be fetched again before it is used, unless it is at streamID
// or later already (fetched again meanwhile).
func (s *Store) MarkRemoteDeviceListStale(ctx context.Context, userID string, streamID int64) error {
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE remote_device_lists SET stale = TRUE WHERE user_id = $1 AND stream_id < $2`, userID, streamID)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark device list of %s stale: %w", userID, err)
	}
	return nil
}
