package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// Cross-signing key types, as key_type is stored.
const (
	KeyTypeMaster      = "master"
	KeyTypeSelfSigning = "self_signing"
	KeyTypeUserSigning = "user_signing"
)

// CrossSigningKeys returns the stored cross-signing keys of userID by key
// type; an empty map when the user has none.
func (s *Store) CrossSigningKeys(ctx context.Context, userID string) (map[string]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT key_type, key_json FROM cross_signing_keys WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("load cross-signing keys: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var typ, js string
		if err := rows.Scan(&typ, &js); err != nil {
			return nil, fmt.Errorf("scan cross-signing key: %w", err)
		}
		out[typ] = js
	}
	return out, rows.Err()
}

// SetCrossSigningKeys stores keys (key type → key object) for userID in one
// transaction, replacing those of the same type, and appends a device-list
// change named after the master key (masterPub, its unpadded base64 public
// key) as Synapse does, so that everyone sharing a room refetches them.
func (s *Store) SetCrossSigningKeys(ctx context.Context, userID, masterPub string, keys map[string]string) error {
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for typ, js := range keys {
			if _, err := tx.ExecContext(ctx, `INSERT INTO cross_signing_keys (user_id, key_type, key_json, updated_ts)
				VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json, updated_ts = excluded.updated_ts`,
				userID, typ, js, now); err != nil {
				return fmt.Errorf("store cross-signing key: %w", err)
			}
		}
		return s.recordDeviceChange(ctx, tx, userID, masterPub, false, now)
	})
}

// Signature is one signature uploaded with /keys/signatures/upload.
type Signature struct {
	OriginUserID string
	// OriginKeyID is the signing key's id: "ed25519:<device id>" or
	// "ed25519:<public key>".
	OriginKeyID  string
	TargetUserID string
	// TargetKeyID is a device id or a cross-signing public key.
	TargetKeyID string
	Signature   string
}

// AddSignatures stores sigs in one transaction (a signature by the same
// key on the same target replaces the older one) and appends a device-list
// change for each user in changed (device id changedKey[user]).
func (s *Store) AddSignatures(ctx context.Context, sigs []Signature, changed map[string]string) error {
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for _, sg := range sigs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO cross_signing_sigs (origin_user_id, origin_key_id, target_user_id, target_key_id, signature)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (target_user_id, target_key_id, origin_user_id, origin_key_id) DO UPDATE SET signature = excluded.signature`,
				sg.OriginUserID, sg.OriginKeyID, sg.TargetUserID, sg.TargetKeyID, sg.Signature); err != nil {
				return fmt.Errorf("store signature: %w", err)
			}
		}
		for user, key := range changed {
			if err := s.recordDeviceChange(ctx, tx, user, key, false, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteUserE2EE deletes what a deactivated account leaves of its E2EE
// state once its devices are gone: cross-signing keys, the signatures it
// made and those on its keys, and its key backups. Others hear of the
// cross-signing change through device_list_changes.
func (s *Store) deleteUserE2EE(ctx context.Context, tx *sql.Tx, userID string, now int64) error {
	for _, q := range []string{
		`DELETE FROM cross_signing_keys WHERE user_id = $1`,
		`DELETE FROM cross_signing_sigs WHERE origin_user_id = $1`,
		`DELETE FROM cross_signing_sigs WHERE target_user_id = $1`,
		`DELETE FROM key_backup_sessions WHERE user_id = $1`,
		`UPDATE key_backup_versions SET deleted = TRUE WHERE user_id = $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, userID); err != nil {
			return fmt.Errorf("delete E2EE state of a deactivated account: %w", err)
		}
	}
	return s.recordDeviceChange(ctx, tx, userID, "", false, now)
}
