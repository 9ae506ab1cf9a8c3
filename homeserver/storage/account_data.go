package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// AccountData is one piece of a user's account data; RoomID is "" for
// global account data.
type AccountData struct {
	RoomID  string
	Type    string
	Content json.RawMessage
	Pos     int64
}

// AccountDataHideProfile is Tchap's global account data by which a user
// hides from the user directory: {"hide_profile": true}.
const AccountDataHideProfile = "im.vector.hide_profile"

// PutAccountData stores content as userID's account data of type typ
// (in roomID, "" for global) and returns its account-data stream
// position. im.vector.hide_profile also hides the user from the user
// directory (or shows them again), in the same transaction.
func (s *Store) PutAccountData(ctx context.Context, userID, roomID, typ string, content json.RawMessage) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if pos, err = nextPos(ctx, tx, StreamAccountData); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO account_data (user_id, room_id, type, content, pos) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, pos = excluded.pos`,
			userID, roomID, typ, string(content), pos)
		if err != nil || roomID != "" || typ != AccountDataHideProfile {
			return err
		}
		var hide struct {
			HideProfile bool `json:"hide_profile"`
		}
		_ = json.Unmarshal(content, &hide) // not an object: not hidden
		return setDirectoryHidden(ctx, tx, userID, hide.HideProfile)
	})
	if err != nil {
		return 0, fmt.Errorf("store account data %s of %s: %w", typ, userID, err)
	}
	return pos, nil
}

// GetAccountData returns userID's account data of type typ in roomID (""
// for global), or ErrNotFound.
func (s *Store) GetAccountData(ctx context.Context, userID, roomID, typ string) (json.RawMessage, error) {
	var content string
	err := s.db.Read().QueryRowContext(ctx, `SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3`,
		userID, roomID, typ).Scan(&content)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read account data %s of %s: %w", typ, userID, err)
	}
	return json.RawMessage(content), nil
}

// AccountDataSince returns userID's account data changed in (since, upTo],
// global and per room.
func (s *Store) AccountDataSince(ctx context.Context, userID string, since, upTo int64) ([]AccountData, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT room_id, type, content, pos FROM account_data
		WHERE user_id = $1 AND pos > $2 AND pos <= $3 ORDER BY pos`, userID, since, upTo)
	if err != nil {
		return nil, fmt.Errorf("read account data of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []AccountData
	for rows.Next() {
		var a AccountData
		var content string
		if err := rows.Scan(&a.RoomID, &a.Type, &content, &a.Pos); err != nil {
			return nil, fmt.Errorf("read account data of %s: %w", userID, err)
		}
		a.Content = json.RawMessage(content)
		out = append(out, a)
	}
	return out, rows.Err()
}
