package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ForgetRoom records that userID forgot roomID while its membership there
// was the one at stream position membershipPos.
func (s *Store) ForgetRoom(ctx context.Context, userID, roomID string, membershipPos int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO forgotten_rooms (user_id, room_id, membership_pos) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, room_id) DO UPDATE SET membership_pos = excluded.membership_pos`,
			userID, roomID, membershipPos); err != nil {
			return fmt.Errorf("forget room: %w", err)
		}
		return nil
	})
}

// ForgottenAt returns the stream position of the membership userID had in
// roomID when forgetting it; ok is false if the user never forgot it. The
// room is forgotten only while that membership is still the current one.
func (s *Store) ForgottenAt(ctx context.Context, userID, roomID string) (membershipPos int64, ok bool, err error) {
	err = s.db.Read().QueryRowContext(ctx, `SELECT membership_pos FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2`,
		userID, roomID).Scan(&membershipPos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read forgotten room: %w", err)
	}
	return membershipPos, true, nil
}

// ForgottenRooms returns every room userID has forgotten, with the
// membership position each was forgotten at (see ForgottenAt).
func (s *Store) ForgottenRooms(ctx context.Context, userID string) (map[string]int64, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT room_id, membership_pos FROM forgotten_rooms WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("read forgotten rooms: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var room string
		var pos int64
		if err := rows.Scan(&room, &pos); err != nil {
			return nil, fmt.Errorf("read forgotten rooms: %w", err)
		}
		out[room] = pos
	}
	return out, rows.Err()
}

// UnforgetRoom drops userID's forgotten mark on roomID, when the user
// joins it again.
func (s *Store) UnforgetRoom(ctx context.Context, userID, roomID string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2`, userID, roomID); err != nil {
			return fmt.Errorf("unforget room: %w", err)
		}
		return nil
	})
}
