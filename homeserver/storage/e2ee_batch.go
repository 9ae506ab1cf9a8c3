package storage

import (
	"context"
	"fmt"

	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
)

// keysBatch bounds the IN list of one batched key query, well under both
// engines' parameter limits.
const keysBatch = 500

// inBatches runs fn on userIDs in slices of at most keysBatch, with the
// arguments and the "$1, $2, …" list of each slice.
func inBatches(userIDs []string, fn func(args []any, in string) error) error {
	for len(userIDs) > 0 {
		batch := userIDs[:min(len(userIDs), keysBatch)]
		userIDs = userIDs[len(batch):]
		args := make([]any, len(batch))
		for i, u := range batch {
			args[i] = u
		}
		if err := fn(args, dbstorage.Placeholders(1, len(batch))); err != nil {
			return err
		}
	}
	return nil
}

// UsersKeys is what /keys/query serves of a set of users, read in a few
// batched queries: device keys (with display names) by user, cross-signing
// keys by user and key type, and every signature stored on those users'
// keys.
type UsersKeys struct {
	Devices      map[string][]DeviceKeys
	CrossSigning map[string]map[string]string
	Signatures   []Signature
}

// KeysOfUsers reads the device keys, cross-signing keys and signatures of
// userIDs (each at most once in the list).
func (s *Store) KeysOfUsers(ctx context.Context, userIDs []string) (UsersKeys, error) {
	out := UsersKeys{Devices: map[string][]DeviceKeys{}, CrossSigning: map[string]map[string]string{}}
	db := s.db.Read()
	err := inBatches(userIDs, func(args []any, in string) error {
		rows, err := db.QueryContext(ctx, `SELECT k.user_id, k.device_id, k.key_json, d.display_name FROM device_keys k
			JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
			WHERE k.user_id IN (`+in+`) ORDER BY k.user_id, k.device_id`, args...)
		if err != nil {
			return fmt.Errorf("load device keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var u string
			var d DeviceKeys
			if err := rows.Scan(&u, &d.DeviceID, &d.KeyJSON, &d.DisplayName); err != nil {
				return fmt.Errorf("scan device keys: %w", err)
			}
			out.Devices[u] = append(out.Devices[u], d)
		}
		return rows.Err()
	})
	if err != nil {
		return UsersKeys{}, err
	}
	err = inBatches(userIDs, func(args []any, in string) error {
		rows, err := db.QueryContext(ctx, `SELECT user_id, key_type, key_json FROM cross_signing_keys WHERE user_id IN (`+in+`)`, args...)
		if err != nil {
			return fmt.Errorf("load cross-signing keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var u, typ, js string
			if err := rows.Scan(&u, &typ, &js); err != nil {
				return fmt.Errorf("scan cross-signing key: %w", err)
			}
			if out.CrossSigning[u] == nil {
				out.CrossSigning[u] = map[string]string{}
			}
			out.CrossSigning[u][typ] = js
		}
		return rows.Err()
	})
	if err != nil {
		return UsersKeys{}, err
	}
	err = inBatches(userIDs, func(args []any, in string) error {
		rows, err := db.QueryContext(ctx, `SELECT origin_user_id, origin_key_id, target_user_id, target_key_id, signature
			FROM cross_signing_sigs WHERE target_user_id IN (`+in+`) ORDER BY target_user_id, target_key_id, origin_user_id, origin_key_id`, args...)
		if err != nil {
			return fmt.Errorf("load signatures: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var sg Signature
			if err := rows.Scan(&sg.OriginUserID, &sg.OriginKeyID, &sg.TargetUserID, &sg.TargetKeyID, &sg.Signature); err != nil {
				return fmt.Errorf("scan signature: %w", err)
			}
			out.Signatures = append(out.Signatures, sg)
		}
		return rows.Err()
	})
	if err != nil {
		return UsersKeys{}, err
	}
	return out, nil
}
