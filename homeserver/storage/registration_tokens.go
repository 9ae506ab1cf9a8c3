package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// RegistrationToken is a token that lets its holder register.
type RegistrationToken struct {
	Token string
	// UsesAllowed nil means unlimited.
	UsesAllowed *int
	Completed   int
	// ExpiryTS 0 means never.
	ExpiryTS int64
}

// CreateRegistrationToken stores a new token; ErrUserExists-like clash is
// reported as a wrapped unique violation.
func (s *Store) CreateRegistrationToken(ctx context.Context, t RegistrationToken) error {
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO registration_tokens (token, uses_allowed, expiry_ts, created_ts) VALUES ($1, $2, $3, $4)`,
			t.Token, t.UsesAllowed, t.ExpiryTS, now); err != nil {
			return fmt.Errorf("insert registration token: %w", err)
		}
		return nil
	})
}

// RegistrationTokenUsable reports whether token exists, has not expired and
// has uses left.
func (s *Store) RegistrationTokenUsable(ctx context.Context, token string) (bool, error) {
	var n int
	err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM registration_tokens
		WHERE token = $1 AND (uses_allowed IS NULL OR completed < uses_allowed) AND (expiry_ts = 0 OR expiry_ts > $2)`,
		token, s.nowMS()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check registration token: %w", err)
	}
	return n > 0, nil
}

// useRegistrationToken counts one completed registration against token,
// atomically with the check that it is still usable.
func useRegistrationToken(ctx context.Context, tx *sql.Tx, token string, now int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE registration_tokens SET completed = completed + 1
		WHERE token = $1 AND (uses_allowed IS NULL OR completed < uses_allowed) AND (expiry_ts = 0 OR expiry_ts > $2)`, token, now)
	if err != nil {
		return fmt.Errorf("use registration token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrTokenUnusable
	}
	return nil
}
