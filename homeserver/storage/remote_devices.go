package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Device-list changes of other servers' users, from their
// m.device_list_update EDUs: a row in device_list_changes, so that the
// local users who share a room with them see device_lists.changed, and
// the joins that tell who shares a room with whom.

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
