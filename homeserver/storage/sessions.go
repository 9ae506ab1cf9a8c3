package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// NewSession is a login: a device (new or existing) and its tokens. Tokens
// are given hashed; the store never sees them in clear.
type NewSession struct {
	UserID      string
	DeviceID    string
	DisplayName *string
	IP          string
	AccessHash  string
	// AccessExpiresTS is when the access token expires; 0 never.
	AccessExpiresTS int64
	// RefreshHash is the refresh token issued alongside; empty for none.
	RefreshHash      string
	RefreshExpiresTS int64
}

// OpenSession logs a user in on a device. A new device id creates the
// device (a device-list change); a known one keeps the device and its keys
// but loses its earlier tokens, as the spec asks.
func (s *Store) OpenSession(ctx context.Context, ns NewSession) error {
	defer s.sessionsChanged()
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error { return s.openSession(ctx, tx, ns, now) })
}

func (s *Store) openSession(ctx context.Context, tx *sql.Tx, ns NewSession, now int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE devices SET last_seen_ts = $1, last_seen_ip = $2 WHERE user_id = $3 AND device_id = $4`,
		now, ns.IP, ns.UserID, ns.DeviceID)
	if err != nil {
		return fmt.Errorf("touch device: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		for _, table := range []string{"access_tokens", "refresh_tokens"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE user_id = $1 AND device_id = $2`, ns.UserID, ns.DeviceID); err != nil {
				return fmt.Errorf("revoke earlier %s of device: %w", table, err)
			}
		}
	} else {
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip)
			VALUES ($1, $2, $3, $4, $5, $6)`, ns.UserID, ns.DeviceID, ns.DisplayName, now, now, ns.IP); err != nil {
			return fmt.Errorf("insert device: %w", err)
		}
		if err := s.recordDeviceChange(ctx, tx, ns.UserID, ns.DeviceID, false, now); err != nil {
			return err
		}
	}
	return insertTokens(ctx, tx, ns, 0, now)
}

// insertTokens stores the access token and, if any, its refresh token.
func insertTokens(ctx context.Context, tx *sql.Tx, ns NewSession, replaces int64, now int64) error {
	var refreshID int64
	if ns.RefreshHash != "" {
		err := tx.QueryRowContext(ctx, `INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts, expires_ts, replaces_id)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, ns.RefreshHash, ns.UserID, ns.DeviceID, now, ns.RefreshExpiresTS, replaces).Scan(&refreshID)
		if err != nil {
			return fmt.Errorf("insert refresh token: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts, refresh_token_id)
		VALUES ($1, $2, $3, $4, $5, $6)`, ns.AccessHash, ns.UserID, ns.DeviceID, now, ns.AccessExpiresTS, refreshID); err != nil {
		return fmt.Errorf("insert access token: %w", err)
	}
	return nil
}

// Session is what an access token resolves to.
type Session struct {
	TokenID        int64
	UserID         string
	DeviceID       string
	IsAdmin        bool
	AppServiceID   string
	ExpiresTS      int64
	Used           bool
	RefreshTokenID int64
}

// SessionByAccessToken resolves a hashed access token; ErrNotFound if no
// such token exists (or its account is deactivated).
func (s *Store) SessionByAccessToken(ctx context.Context, hash string) (Session, error) {
	var ss Session
	err := s.db.Read().QueryRowContext(ctx, `SELECT t.id, t.user_id, t.device_id, a.is_admin, a.appservice_id, t.expires_ts, t.used, t.refresh_token_id
		FROM access_tokens t JOIN accounts a ON a.user_id = t.user_id
		WHERE t.token_hash = $1 AND NOT a.deactivated`, hash).
		Scan(&ss.TokenID, &ss.UserID, &ss.DeviceID, &ss.IsAdmin, &ss.AppServiceID, &ss.ExpiresTS, &ss.Used, &ss.RefreshTokenID)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("look up access token: %w", err)
	}
	return ss, nil
}

// MarkUsed records the first use of an access token; that use revokes the
// refresh token its refresh token replaced (spec: "the old refresh token
// remains valid until the new access token or refresh token is used").
func (s *Store) MarkUsed(ctx context.Context, ss Session) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE access_tokens SET used = TRUE WHERE id = $1`, ss.TokenID); err != nil {
			return fmt.Errorf("mark access token used: %w", err)
		}
		if ss.RefreshTokenID == 0 {
			return nil
		}
		return revokeReplaced(ctx, tx, ss.RefreshTokenID)
	})
}

func revokeReplaced(ctx context.Context, tx *sql.Tx, refreshID int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE id = (SELECT replaces_id FROM refresh_tokens WHERE id = $1)`, refreshID); err != nil {
		return fmt.Errorf("revoke replaced refresh token: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET replaces_id = 0 WHERE id = $1`, refreshID); err != nil {
		return fmt.Errorf("clear replaced refresh token: %w", err)
	}
	return nil
}

// Refresh exchanges a hashed refresh token for the new pair in ns (whose
// UserID and DeviceID are filled in from the old token). The access token
// issued with the old refresh token is revoked now; the old refresh token
// when the new pair is first used. ErrNotFound if the refresh token is
// unknown or expired.
func (s *Store) Refresh(ctx context.Context, oldHash string, ns NewSession) (NewSession, error) {
	defer s.sessionsChanged()
	now := s.nowMS()
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var oldID, expires int64
		err := tx.QueryRowContext(ctx, `SELECT id, user_id, device_id, expires_ts FROM refresh_tokens WHERE token_hash = $1`, oldHash).
			Scan(&oldID, &ns.UserID, &ns.DeviceID, &expires)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && expires != 0 && expires <= now) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("look up refresh token: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE refresh_token_id = $1`, oldID); err != nil {
			return fmt.Errorf("revoke old access token: %w", err)
		}
		// Using this refresh token also counts as a use of the pair it
		// came with, so the one it replaced goes now.
		if err := revokeReplaced(ctx, tx, oldID); err != nil {
			return err
		}
		return insertTokens(ctx, tx, ns, oldID, now)
	})
	return ns, err
}
