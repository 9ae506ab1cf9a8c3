package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrWrongBackupVersion: a key upload named a backup version that exists
// but is not the user's current one.
var ErrWrongBackupVersion = errors.New("not the current backup version")

// BackupVersion is one key backup version of a user.
type BackupVersion struct {
	Version   int64
	Algorithm string
	// AuthData is a JSON object, opaque to the server.
	AuthData string
	Etag     int64
	Count    int64
}

// BackupSession is one backed-up Megolm session.
type BackupSession struct {
	RoomID            string
	SessionID         string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	// SessionData is a JSON object, encrypted by the client.
	SessionData string
}

// Better reports whether s should replace old in a backup, by the spec's
// rule: a verified session beats an unverified one, then the lower first
// message index wins, then the lower forwarded count. A tie keeps old.
func (s BackupSession) Better(old BackupSession) bool {
	if s.IsVerified != old.IsVerified {
		return s.IsVerified
	}
	if s.FirstMessageIndex != old.FirstMessageIndex {
		return s.FirstMessageIndex < old.FirstMessageIndex
	}
	return s.ForwardedCount < old.ForwardedCount
}

// CreateBackupVersion creates a new backup version for userID, which
// becomes the current one, and returns its number. Numbers are never
// reused, even after a deletion.
func (s *Store) CreateBackupVersion(ctx context.Context, userID, algorithm, authData string) (int64, error) {
	var v int64
	for attempt := 0; ; attempt++ {
		err := s.db.Write(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM key_backup_versions WHERE user_id = $1`,
				userID).Scan(&v); err != nil {
				return fmt.Errorf("next backup version: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data, etag, deleted)
				VALUES ($1, $2, $3, $4, 0, FALSE)`, userID, v, algorithm, authData); err != nil {
				return fmt.Errorf("create backup version: %w", err)
			}
			return nil
		})
		// Two concurrent creations on PostgreSQL may pick the same number:
		// the loser tries the next one.
		if err != nil && s.db.Dialect.IsUniqueViolation(err) && attempt < 5 {
			continue
		}
		return v, err
	}
}

// BackupVersionOf returns version of userID's backup with its count of
// keys, or the current (latest) version when version is 0. ErrNotFound
// when there is no such (undeleted) version.
func (s *Store) BackupVersionOf(ctx context.Context, userID string, version int64) (BackupVersion, error) {
	return backupVersion(ctx, s.db.Read(), userID, version)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func backupVersion(ctx context.Context, q queryRower, userID string, version int64) (BackupVersion, error) {
	var b BackupVersion
	var err error
	if version == 0 {
		err = q.QueryRowContext(ctx, `SELECT version, algorithm, auth_data, etag FROM key_backup_versions
			WHERE user_id = $1 AND deleted = FALSE ORDER BY version DESC LIMIT 1`, userID).
			Scan(&b.Version, &b.Algorithm, &b.AuthData, &b.Etag)
	} else {
		err = q.QueryRowContext(ctx, `SELECT version, algorithm, auth_data, etag FROM key_backup_versions
			WHERE user_id = $1 AND version = $2 AND deleted = FALSE`, userID, version).
			Scan(&b.Version, &b.Algorithm, &b.AuthData, &b.Etag)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return BackupVersion{}, ErrNotFound
	}
	if err != nil {
		return BackupVersion{}, fmt.Errorf("load backup version: %w", err)
	}
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_backup_sessions WHERE user_id = $1 AND version = $2`,
		userID, b.Version).Scan(&b.Count); err != nil {
		return BackupVersion{}, fmt.Errorf("count backed-up keys: %w", err)
	}
	return b, nil
}

// UpdateBackupAuthData replaces the auth_data of an undeleted version;
// ErrNotFound when there is none. The etag stays: the keys did not change.
func (s *Store) UpdateBackupAuthData(ctx context.Context, userID string, version int64, authData string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET auth_data = $1
			WHERE user_id = $2 AND version = $3 AND deleted = FALSE`, authData, userID, version)
		if err != nil {
			return fmt.Errorf("update backup version: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// DeleteBackupVersion marks a version deleted and drops its keys;
// ErrNotFound when there is no such undeleted version.
func (s *Store) DeleteBackupVersion(ctx context.Context, userID string, version int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET deleted = TRUE
			WHERE user_id = $1 AND version = $2 AND deleted = FALSE`, userID, version)
		if err != nil {
			return fmt.Errorf("delete backup version: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2`, userID, version); err != nil {
			return fmt.Errorf("delete backed-up keys: %w", err)
		}
		return nil
	})
}

// PutBackupSessions stores sessions in version, which must be userID's
// current version (ErrNotFound when the user has no such version,
// ErrWrongBackupVersion when it is not the current one). A session
// replaces the stored copy only when it is Better; the etag moves when
// anything changed. It returns the version's new etag and count.
func (s *Store) PutBackupSessions(ctx context.Context, userID string, version int64, sessions []BackupSession) (etag, count int64, err error) {
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		cur, err := backupVersion(ctx, tx, userID, 0)
		if err != nil {
			return err
		}
		if cur.Version != version {
			if _, err := backupVersion(ctx, tx, userID, version); err != nil {
				return err
			}
			return ErrWrongBackupVersion
		}
		changed := false
		for _, bs := range sessions {
			var old BackupSession
			err := tx.QueryRowContext(ctx, `SELECT first_message_index, forwarded_count, is_verified FROM key_backup_sessions
				WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4`, userID, version, bs.RoomID, bs.SessionID).
				Scan(&old.FirstMessageIndex, &old.ForwardedCount, &old.IsVerified)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return fmt.Errorf("load backed-up key: %w", err)
			case !bs.Better(old):
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_backup_sessions
				(user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
				forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data = excluded.session_data`,
				userID, version, bs.RoomID, bs.SessionID, bs.FirstMessageIndex, bs.ForwardedCount, bs.IsVerified, bs.SessionData); err != nil {
				return fmt.Errorf("store backed-up key: %w", err)
			}
			changed = true
		}
		etag, count, err = bumpBackupEtag(ctx, tx, userID, version, changed)
		return err
	})
	return etag, count, err
}

// DeleteBackupSessions deletes the keys of version (ErrNotFound when the
// version does not exist): all of them when roomID is empty, a room's when
// sessionID is empty, else one session. It returns the new etag and count.
func (s *Store) DeleteBackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) (etag, count int64, err error) {
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := backupVersion(ctx, tx, userID, version); err != nil {
			return err
		}
		q := `DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2`
		args := []any{userID, version}
		if roomID != "" {
			q += ` AND room_id = $3`
			args = append(args, roomID)
			if sessionID != "" {
				q += ` AND session_id = $4`
				args = append(args, sessionID)
			}
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("delete backed-up keys: %w", err)
		}
		n, _ := res.RowsAffected()
		etag, count, err = bumpBackupEtag(ctx, tx, userID, version, n > 0)
		return err
	})
	return etag, count, err
}

func bumpBackupEtag(ctx context.Context, tx *sql.Tx, userID string, version int64, changed bool) (etag, count int64, err error) {
	if changed {
		if _, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`,
			userID, version); err != nil {
			return 0, 0, fmt.Errorf("bump backup etag: %w", err)
		}
	}
	b, err := backupVersion(ctx, tx, userID, version)
	if err != nil {
		return 0, 0, err
	}
	return b.Etag, b.Count, nil
}

// BackupSessions returns the keys of version (ErrNotFound when the version
// does not exist): all of them when roomID is empty, a room's when
// sessionID is empty, else one session (none is not an error).
func (s *Store) BackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) ([]BackupSession, error) {
	if _, err := s.BackupVersionOf(ctx, userID, version); err != nil {
		return nil, err
	}
	q := `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
		FROM key_backup_sessions WHERE user_id = $1 AND version = $2`
	args := []any{userID, version}
	if roomID != "" {
		q += ` AND room_id = $3`
		args = append(args, roomID)
		if sessionID != "" {
			q += ` AND session_id = $4`
			args = append(args, sessionID)
		}
	}
	rows, err := s.db.Read().QueryContext(ctx, q+` ORDER BY room_id, session_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("load backed-up keys: %w", err)
	}
	defer rows.Close()
	var out []BackupSession
	for rows.Next() {
		var b BackupSession
		if err := rows.Scan(&b.RoomID, &b.SessionID, &b.FirstMessageIndex, &b.ForwardedCount, &b.IsVerified, &b.SessionData); err != nil {
			return nil, fmt.Errorf("scan backed-up key: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}
