package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
)

// ErrKeyConflict: a one-time key id is already stored with other content.
// The spec forbids reusing a key id; the client must not change a key.
var ErrKeyConflict = errors.New("one-time key id already used for another key")

// ErrIdentityKeysChanged: device keys were uploaded for a device whose
// stored keys (the "keys" object: its ed25519 and curve25519 keys) differ.
// A device's identity never changes (clients ignore such a change); a new
// identity is a new device.
var ErrIdentityKeysChanged = errors.New("the identity keys of an existing device cannot change")

// OneTimeKey is one uploaded one-time or fallback key.
type OneTimeKey struct {
	// Algorithm is the part before the colon of "signed_curve25519:AAAAHQ".
	Algorithm string
	// KeyID is the part after it.
	KeyID string
	// JSON is the key object (or string) as the client sent it.
	JSON string
}

// KeyUpload is the content of one POST /keys/upload, already checked.
type KeyUpload struct {
	UserID   string
	DeviceID string
	// DeviceKeys is the device keys object; empty when not uploaded.
	DeviceKeys string
	// OneTimeKeys are added; a key id already stored with the same
	// content is ignored.
	OneTimeKeys []OneTimeKey
	// FallbackKeys replace the device's fallback key of their algorithm.
	FallbackKeys []OneTimeKey
}

// UploadKeys stores an upload in one transaction: all of it or nothing
// (ErrKeyConflict when a one-time key id is reused with other content,
// ErrIdentityKeysChanged when the device already has other identity keys).
// New or changed device keys append a device-list change; changed reports
// that, so that the caller wakes those who share a room with the user.
func (s *Store) UploadKeys(ctx context.Context, u KeyUpload) (changed bool, err error) {
	now := s.nowMS()
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		changed = false
		if u.DeviceKeys != "" {
			var old string
			err := tx.QueryRowContext(ctx, `SELECT key_json FROM device_keys WHERE user_id = $1 AND device_id = $2`,
				u.UserID, u.DeviceID).Scan(&old)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("load device keys: %w", err)
			}
			if old != "" && old != u.DeviceKeys && !sameIdentityKeys(old, u.DeviceKeys) {
				return ErrIdentityKeysChanged
			}
			if old != u.DeviceKeys {
				if _, err := tx.ExecContext(ctx, `INSERT INTO device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)
					ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json`,
					u.UserID, u.DeviceID, u.DeviceKeys); err != nil {
					return fmt.Errorf("store device keys: %w", err)
				}
				if err := s.recordDeviceChange(ctx, tx, u.UserID, u.DeviceID, false, now); err != nil {
					return err
				}
				changed = true
			}
		}
		for _, k := range u.OneTimeKeys {
			if err := addOneTimeKey(ctx, tx, u.UserID, u.DeviceID, k); err != nil {
				return err
			}
		}
		for _, k := range u.FallbackKeys {
			if err := setFallbackKey(ctx, tx, u.UserID, u.DeviceID, k); err != nil {
				return err
			}
		}
		return nil
	})
	return changed, err
}

// sameIdentityKeys reports whether two device keys objects hold the same
// "keys" object.
func sameIdentityKeys(a, b string) bool {
	var ka, kb struct {
		Keys map[string]string `json:"keys"`
	}
	if json.Unmarshal([]byte(a), &ka) != nil || json.Unmarshal([]byte(b), &kb) != nil {
		return false
	}
	return maps.Equal(ka.Keys, kb.Keys)
}

func addOneTimeKey(ctx context.Context, tx *sql.Tx, userID, deviceID string, k OneTimeKey) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO one_time_keys (user_id, device_id, key_id, algorithm, key_json)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, device_id, key_id) DO NOTHING`,
		userID, deviceID, k.Algorithm+":"+k.KeyID, k.Algorithm, k.JSON)
	if err != nil {
		return fmt.Errorf("store one-time key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var old string
	if err := tx.QueryRowContext(ctx, `SELECT key_json FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND key_id = $3`,
		userID, deviceID, k.Algorithm+":"+k.KeyID).Scan(&old); err != nil {
		return fmt.Errorf("load one-time key: %w", err)
	}
	if old != k.JSON {
		return fmt.Errorf("%w: %s:%s", ErrKeyConflict, k.Algorithm, k.KeyID)
	}
	return nil
}

// setFallbackKey replaces the fallback key of k's algorithm. The same key
// uploaded again keeps its used flag, as Synapse does: a client repeating
// its upload must not make a used key look fresh.
func setFallbackKey(ctx context.Context, tx *sql.Tx, userID, deviceID string, k OneTimeKey) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
		VALUES ($1, $2, $3, $4, $5, FALSE)
		ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json, used = FALSE
		WHERE fallback_keys.key_id <> excluded.key_id OR fallback_keys.key_json <> excluded.key_json`,
		userID, deviceID, k.Algorithm, k.KeyID, k.JSON); err != nil {
		return fmt.Errorf("store fallback key: %w", err)
	}
	return nil
}

// OneTimeKeyCounts returns how many unclaimed one-time keys deviceID of
// userID has, by algorithm; algorithms with none are absent (callers add
// signed_curve25519: 0 as the spec asks).
func (s *Store) OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT algorithm, COUNT(*) FROM one_time_keys
		WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("count one-time keys: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var alg string
		var n int
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, fmt.Errorf("scan one-time key count: %w", err)
		}
		out[alg] = n
	}
	return out, rows.Err()
}

// UnusedFallbackKeyTypes returns the algorithms for which deviceID of
// userID has a fallback key that no claim has handed out yet, sorted.
func (s *Store) UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT algorithm FROM fallback_keys
		WHERE user_id = $1 AND device_id = $2 AND used = FALSE ORDER BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("list unused fallback keys: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var alg string
		if err := rows.Scan(&alg); err != nil {
			return nil, fmt.Errorf("scan fallback key: %w", err)
		}
		out = append(out, alg)
	}
	return out, rows.Err()
}

// DeviceKeys is a device's uploaded keys with its display name.
type DeviceKeys struct {
	DeviceID    string
	KeyJSON     string
	DisplayName *string
}

// DeviceKeysOf returns the uploaded device keys of userID's devices:
// those of deviceIDs, or of every device when deviceIDs is empty. Devices
// without keys (or deleted) are absent.
func (s *Store) DeviceKeysOf(ctx context.Context, userID string, deviceIDs []string) ([]DeviceKeys, error) {
	q := `SELECT k.device_id, k.key_json, d.display_name FROM device_keys k
		JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
		WHERE k.user_id = $1`
	args := []any{userID}
	if len(deviceIDs) > 0 {
		q += ` AND k.device_id IN (` + dbstorage.Placeholders(2, len(deviceIDs)) + `)`
		for _, id := range deviceIDs {
			args = append(args, id)
		}
	}
	rows, err := s.db.Read().QueryContext(ctx, q+` ORDER BY k.device_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("load device keys: %w", err)
	}
	defer rows.Close()
	var out []DeviceKeys
	for rows.Next() {
		var d DeviceKeys
		if err := rows.Scan(&d.DeviceID, &d.KeyJSON, &d.DisplayName); err != nil {
			return nil, fmt.Errorf("scan device keys: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ClaimedKey is a key handed out by ClaimKey.
type ClaimedKey struct {
	// KeyID is "algorithm:id".
	KeyID string
	JSON  string
	// Fallback says the device had no one-time key left and this is its
	// fallback key, which stays stored (marked used).
	Fallback bool
}

// ClaimKey hands out one key of algorithm for deviceID of userID: a
// one-time key, deleted as it is handed out so that no other claim can
// ever get it, or else the fallback key, marked used. ErrNotFound when the
// device has neither.
func (s *Store) ClaimKey(ctx context.Context, userID, deviceID, algorithm string) (ClaimedKey, error) {
	var out ClaimedKey
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		// A retry happens only when a concurrent claim took the key
		// picked (and committed): every turn consumes a key, so the loop
		// ends.
		for {
			var keyID string
			err := tx.QueryRowContext(ctx, `SELECT key_id FROM one_time_keys
				WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 ORDER BY key_id LIMIT 1`,
				userID, deviceID, algorithm).Scan(&keyID)
			if errors.Is(err, sql.ErrNoRows) {
				return claimFallbackKey(ctx, tx, userID, deviceID, algorithm, &out)
			}
			if err != nil {
				return fmt.Errorf("pick one-time key: %w", err)
			}
			// On PostgreSQL a concurrent claim may have picked the same
			// key: the DELETE of the second waits for the first to commit
			// and then deletes nothing, so only one claim returns the key.
			err = tx.QueryRowContext(ctx, `DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND key_id = $3
				RETURNING key_json`, userID, deviceID, keyID).Scan(&out.JSON)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("claim one-time key: %w", err)
			}
			out.KeyID = keyID
			return nil
		}
	})
	if err != nil {
		return ClaimedKey{}, err
	}
	return out, nil
}

func claimFallbackKey(ctx context.Context, tx *sql.Tx, userID, deviceID, algorithm string, out *ClaimedKey) error {
	var keyID string
	err := tx.QueryRowContext(ctx, `UPDATE fallback_keys SET used = TRUE
			WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 RETURNING key_id, key_json`,
		userID, deviceID, algorithm).Scan(&keyID, &out.JSON)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("claim fallback key: %w", err)
	}
	out.KeyID, out.Fallback = algorithm+":"+keyID, true
	return nil
}
