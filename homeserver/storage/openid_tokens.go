package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/matrix-gouv/homeserver/homeserver/api"
)

// CreateOpenIDToken stores an OpenID token's hash for userID until
// expiresTS (ms), and drops the tokens that have expired.
func (s *Store) CreateOpenIDToken(ctx context.Context, hash, userID string, expiresTS int64) error {
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM openid_tokens WHERE expires_ts < $1`, now); err != nil {
			return fmt.Errorf("drop expired OpenID tokens: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)`,
			hash, userID, expiresTS); err != nil {
			return fmt.Errorf("store OpenID token: %w", err)
		}
		return nil
	})
}

// OpenIDTokenUser returns the user of the OpenID token with this hash, or
// api.ErrUnknownToken when there is none or it expired before nowTS.
func (s *Store) OpenIDTokenUser(ctx context.Context, hash string, nowTS int64) (string, error) {
	var userID string
	err := s.db.Read().QueryRowContext(ctx, `SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expires_ts >= $2`, hash, nowTS).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", api.ErrUnknownToken
	}
	if err != nil {
		return "", fmt.Errorf("read OpenID token: %w", err)
	}
	return userID, nil
}
