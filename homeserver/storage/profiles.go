package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Profile field names with a meaning to the server: they go into member
// events and the user directory.
const (
	ProfileDisplayName = "displayname"
	ProfileAvatarURL   = "avatar_url"
)

// MaxProfileBytes is the largest profile, as a JSON object, that a user
// may hold (spec v1.16: 64 KiB).
const MaxProfileBytes = 64 << 10

// ErrProfileTooLarge: the change would make the profile larger than
// MaxProfileBytes.
var ErrProfileTooLarge = errors.New("profile too large")

// ProfileFields returns every field of userID's profile (empty when none).
func (s *Store) ProfileFields(ctx context.Context, userID string) (map[string]json.RawMessage, error) {
	return profileFields(ctx, s.db.Read(), userID)
}

func profileFields(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, userID string) (map[string]json.RawMessage, error) {
	rows, err := q.QueryContext(ctx, `SELECT field, value FROM profile_fields WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("read profile of %s: %w", userID, err)
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var field, value string
		if err := rows.Scan(&field, &value); err != nil {
			return nil, fmt.Errorf("read profile of %s: %w", userID, err)
		}
		out[field] = json.RawMessage(value)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read profile of %s: %w", userID, err)
	}
	return out, nil
}

// SetProfileField sets (value non-nil) or deletes (value nil) one field
// of userID's profile. A change of the display name or avatar refreshes
// the user's directory entry in the same transaction. ErrProfileTooLarge
// when the profile would pass MaxProfileBytes; ErrNotFound for a user
// without an account.
func (s *Store) SetProfileField(ctx context.Context, userID, field string, value json.RawMessage) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE user_id = $1 AND NOT deactivated`, userID).Scan(&n); err != nil {
			return fmt.Errorf("read account: %w", err)
		}
		if n == 0 {
			return ErrNotFound
		}
		fields, err := profileFields(ctx, tx, userID)
		if err != nil {
			return err
		}
		if value == nil {
			delete(fields, field)
			if _, err := tx.ExecContext(ctx, `DELETE FROM profile_fields WHERE user_id = $1 AND field = $2`, userID, field); err != nil {
				return fmt.Errorf("delete profile field: %w", err)
			}
		} else {
			fields[field] = value
			raw, err := json.Marshal(fields)
			if err != nil {
				return fmt.Errorf("encode profile: %w", err)
			}
			if len(raw) > MaxProfileBytes {
				return ErrProfileTooLarge
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO profile_fields (user_id, field, value) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value`, userID, field, string(value)); err != nil {
				return fmt.Errorf("store profile field: %w", err)
			}
		}
		if field != ProfileDisplayName && field != ProfileAvatarURL {
			return nil
		}
		return upsertDirectoryUser(ctx, tx, DirectoryUser{UserID: userID, Local: true,
			DisplayName: profileString(fields[ProfileDisplayName]), AvatarURL: profileString(fields[ProfileAvatarURL])})
	})
}

// profileString reads a JSON string field; nil when absent or not a
// string.
func profileString(raw json.RawMessage) *string {
	if raw == nil {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return &s
}

// createProfile gives a new account its first display name (so that
// other users see a name) and its directory entry, in the account's
// transaction.
func createProfile(ctx context.Context, tx *sql.Tx, userID, name string) error {
	raw, err := json.Marshal(name)
	if err != nil {
		return fmt.Errorf("encode display name: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO profile_fields (user_id, field, value) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, field) DO NOTHING`, userID, ProfileDisplayName, string(raw)); err != nil {
		return fmt.Errorf("store display name: %w", err)
	}
	return upsertDirectoryUser(ctx, tx, DirectoryUser{UserID: userID, Local: true, DisplayName: &name})
}
