package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// Pusher is a pusher as POST /pushers/set made it.
type Pusher struct {
	UserID            string
	AppID             string
	PushKey           string
	Kind              string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	// Data is the pusher's data object (url, format...).
	Data json.RawMessage
	// DeviceID is the device that set it.
	DeviceID  string
	CreatedTS int64
}

const pusherColumns = `user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, device_id, created_ts`

func scanPusher(rows *sql.Rows) (Pusher, error) {
	var p Pusher
	var data string
	if err := rows.Scan(&p.UserID, &p.AppID, &p.PushKey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName,
		&p.ProfileTag, &p.Lang, &data, &p.DeviceID, &p.CreatedTS); err != nil {
		return Pusher{}, fmt.Errorf("scan pusher: %w", err)
	}
	p.Data = json.RawMessage(data)
	return p, nil
}

// Pushers returns userID's pushers, oldest first.
func (s *Store) Pushers(ctx context.Context, userID string) ([]Pusher, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+pusherColumns+` FROM pushers WHERE user_id = $1 ORDER BY created_ts, app_id, pushkey`, userID)
	if err != nil {
		return nil, fmt.Errorf("read pushers: %w", err)
	}
	defer rows.Close()
	var out []Pusher
	for rows.Next() {
		p, err := scanPusher(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pushers: %w", err)
	}
	return out, nil
}

// Pusher returns one pusher, or ErrNotFound.
func (s *Store) Pusher(ctx context.Context, userID, appID, pushKey string) (Pusher, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+pusherColumns+` FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`,
		userID, appID, pushKey)
	if err != nil {
		return Pusher{}, fmt.Errorf("read pusher: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Pusher{}, fmt.Errorf("read pusher: %w", err)
		}
		return Pusher{}, ErrNotFound
	}
	return scanPusher(rows)
}

// SetPusher creates or updates p (keyed by user, app id and pushkey).
// Unless appendIt, the same app id and pushkey of other users are
// deleted first, as the spec says of "append": false.
func (s *Store) SetPusher(ctx context.Context, p Pusher, appendIt bool) error {
	if p.CreatedTS == 0 {
		p.CreatedTS = s.nowMS()
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if !appendIt {
			if err := deletePushersTx(ctx, tx, `app_id = $1 AND pushkey = $2 AND user_id <> $3`, p.AppID, p.PushKey, p.UserID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pushers (`+pusherColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (app_id, pushkey, user_id) DO UPDATE SET kind = excluded.kind,
			app_display_name = excluded.app_display_name, device_display_name = excluded.device_display_name,
			profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data, device_id = excluded.device_id`,
			p.UserID, p.AppID, p.PushKey, p.Kind, p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang,
			string(p.Data), p.DeviceID, p.CreatedTS); err != nil {
			return fmt.Errorf("set pusher: %w", err)
		}
		return nil
	})
}

// DeletePusher deletes userID's pusher and what is queued for it;
// deleting a pusher that does not exist is no error.
func (s *Store) DeletePusher(ctx context.Context, userID, appID, pushKey string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		return deletePushersTx(ctx, tx, `app_id = $1 AND pushkey = $2 AND user_id = $3`, appID, pushKey, userID)
	})
}

// deletePushersTx deletes the pushers that where selects (on app_id,
// pushkey and user_id, with $1..$3) and their queued notifications.
func deletePushersTx(ctx context.Context, tx *sql.Tx, where string, args ...any) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM push_queue WHERE `+where, args...); err != nil {
		return fmt.Errorf("delete queued pushes: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pushers WHERE `+where, args...); err != nil {
		return fmt.Errorf("delete pushers: %w", err)
	}
	return nil
}

// deleteDevicePushersTx deletes the pushers a device set, and what is
// queued for them: a device logged out stops receiving notifications.
func deleteDevicePushersTx(ctx context.Context, tx *sql.Tx, userID, deviceID string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM push_queue WHERE user_id = $1 AND (app_id, pushkey) IN
		(SELECT app_id, pushkey FROM pushers WHERE user_id = $2 AND device_id = $3)`, userID, userID, deviceID); err != nil {
		return fmt.Errorf("delete queued pushes of device: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pushers WHERE user_id = $1 AND device_id = $2`, userID, deviceID); err != nil {
		return fmt.Errorf("delete pushers of device: %w", err)
	}
	return nil
}
