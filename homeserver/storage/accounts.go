package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Account is a local user.
type Account struct {
	UserID       string
	Localpart    string
	PasswordHash string
	IsAdmin      bool
	Deactivated  bool
	AppServiceID string
	CreatedTS    int64
}

// Account returns the account of userID, or ErrNotFound.
func (s *Store) Account(ctx context.Context, userID string) (Account, error) {
	var a Account
	err := s.db.Read().QueryRowContext(ctx, `SELECT user_id, localpart, password_hash, is_admin, deactivated, appservice_id, created_ts
		FROM accounts WHERE user_id = $1`, userID).
		Scan(&a.UserID, &a.Localpart, &a.PasswordHash, &a.IsAdmin, &a.Deactivated, &a.AppServiceID, &a.CreatedTS)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, ErrNotFound
	}
	if err != nil {
		return Account{}, fmt.Errorf("load account %s: %w", userID, err)
	}
	return a, nil
}

// LocalpartTaken reports whether an account, active or not, holds localpart.
func (s *Store) LocalpartTaken(ctx context.Context, localpart string) (bool, error) {
	var n int
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE localpart = $1`, localpart).Scan(&n); err != nil {
		return false, fmt.Errorf("check localpart: %w", err)
	}
	return n > 0, nil
}

// NewAccount is what CreateAccount needs.
type NewAccount struct {
	UserID       string
	Localpart    string
	PasswordHash string
	IsAdmin      bool
	AppServiceID string
	// RegistrationToken, when set, is consumed in the same transaction; the
	// account is not created if the token is no longer usable.
	RegistrationToken string
	// Session, when set, logs the new account in on a new device.
	Session *NewSession
	// DisplayName is the account's first display name; empty: its
	// localpart.
	DisplayName string
}

// CreateAccount creates the account, consumes its registration token and
// opens its first session, all or nothing. The account's display name
// starts as a.DisplayName or its localpart, as on Synapse, and it enters
// the user directory. ErrUserExists if taken.
func (s *Store) CreateAccount(ctx context.Context, a NewAccount) error {
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if a.RegistrationToken != "" {
			if err := useRegistrationToken(ctx, tx, a.RegistrationToken, now); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (user_id, localpart, password_hash, is_admin, appservice_id, created_ts)
			VALUES ($1, $2, $3, $4, $5, $6)`, a.UserID, a.Localpart, a.PasswordHash, a.IsAdmin, a.AppServiceID, now)
		if s.db.Dialect.IsUniqueViolation(err) {
			return ErrUserExists
		}
		if err != nil {
			return fmt.Errorf("insert account: %w", err)
		}
		name := a.DisplayName
		if name == "" {
			name = a.Localpart
		}
		if err := createProfile(ctx, tx, a.UserID, name); err != nil {
			return err
		}
		if a.Session != nil {
			return s.openSession(ctx, tx, *a.Session, now)
		}
		return nil
	})
}

// SetPassword replaces the password hash of userID and, if logoutExcept is
// not nil, deletes every device of the user but *logoutExcept.
func (s *Store) SetPassword(ctx context.Context, userID, hash string, logoutExcept *string) error {
	defer s.sessionsChanged()
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET password_hash = $1 WHERE user_id = $2 AND NOT deactivated`, hash, userID)
		if err != nil {
			return fmt.Errorf("update password: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if logoutExcept == nil {
			return nil
		}
		ids, err := deviceIDs(ctx, tx, userID)
		if err != nil {
			return err
		}
		var others []string
		for _, id := range ids {
			if id != *logoutExcept {
				others = append(others, id)
			}
		}
		return s.deleteDevices(ctx, tx, userID, others, now)
	})
}

// Deactivate marks the account deactivated, clears its password and deletes
// every device with its tokens and keys, its cross-signing keys and
// signatures and its key backups; it leaves the user directory. The user id stays taken forever.
func (s *Store) Deactivate(ctx context.Context, userID string) error {
	defer s.sessionsChanged()
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET deactivated = TRUE, password_hash = '' WHERE user_id = $1`, userID)
		if err != nil {
			return fmt.Errorf("deactivate account: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		ids, err := deviceIDs(ctx, tx, userID)
		if err != nil {
			return err
		}
		if err := s.deleteDevices(ctx, tx, userID, ids, now); err != nil {
			return err
		}
		if err := deleteDirectoryUser(ctx, tx, userID); err != nil {
			return err
		}
		return s.deleteUserE2EE(ctx, tx, userID, now)
	})
}
