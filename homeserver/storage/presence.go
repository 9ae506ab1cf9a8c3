package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Presence is a user's stored presence.
type Presence struct {
	UserID       string
	State        string
	StatusMsg    string
	LastActiveTS int64
	Pos          int64
}

// PutPresence stores p and returns its presence stream position.
func (s *Store) PutPresence(ctx context.Context, p Presence) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if pos, err = nextPos(ctx, tx, StreamPresence); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO presence (user_id, state, status_msg, last_active_ts, pos) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, status_msg = excluded.status_msg,
				last_active_ts = excluded.last_active_ts, pos = excluded.pos`,
			p.UserID, p.State, p.StatusMsg, p.LastActiveTS, pos)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store presence of %s: %w", p.UserID, err)
	}
	return pos, nil
}

// GetPresence returns userID's stored presence, or ErrNotFound.
func (s *Store) GetPresence(ctx context.Context, userID string) (Presence, error) {
	p := Presence{UserID: userID}
	err := s.db.Read().QueryRowContext(ctx, `SELECT state, status_msg, last_active_ts, pos FROM presence WHERE user_id = $1`, userID).
		Scan(&p.State, &p.StatusMsg, &p.LastActiveTS, &p.Pos)
	if errors.Is(err, sql.ErrNoRows) {
		return Presence{}, ErrNotFound
	}
	if err != nil {
		return Presence{}, fmt.Errorf("read presence of %s: %w", userID, err)
	}
	return p, nil
}

// PresenceSince returns the presence of users changed in (since, upTo].
func (s *Store) PresenceSince(ctx context.Context, since, upTo int64) ([]Presence, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT user_id, state, status_msg, last_active_ts, pos FROM presence
		WHERE pos > $1 AND pos <= $2`, since, upTo)
	if err != nil {
		return nil, fmt.Errorf("read presence changes: %w", err)
	}
	defer rows.Close()
	var out []Presence
	for rows.Next() {
		var p Presence
		if err := rows.Scan(&p.UserID, &p.State, &p.StatusMsg, &p.LastActiveTS, &p.Pos); err != nil {
			return nil, fmt.Errorf("read presence changes: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
