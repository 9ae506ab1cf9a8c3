// Package storage holds the federation component's tables: remote server
// keys and the key responses the notary serves again, inbound
// transactions already answered, and the outbound destinations. One copy
// of each query for both engines.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// ErrNotFound: no such row.
var ErrNotFound = errors.New("not found")

// Store is the federation component's database.
type Store struct {
	db  *storage.DB
	now func() time.Time
}

// New returns a store on db, already migrated.
func New(db *storage.DB) *Store { return &Store{db: db, now: time.Now} }

// ServerKey is one cached public key of another server.
type ServerKey struct {
	ServerName string
	KeyID      string
	// PublicKey is unpadded base64.
	PublicKey string
	// ValidUntilTS (ms) is 0 for an old key; ExpiredTS (ms) 0 for a
	// current one.
	ValidUntilTS, ExpiredTS int64
}

// StoreKeys adds or replaces keys: a key already known keeps the later
// of its validities.
func (s *Store) StoreKeys(ctx context.Context, keys []ServerKey) error {
	now := s.now().UnixMilli()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			_, err := tx.ExecContext(ctx, `INSERT INTO federation_server_keys
				(server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (server_name, key_id) DO UPDATE SET public_key = excluded.public_key,
					valid_until_ts = CASE WHEN excluded.valid_until_ts > federation_server_keys.valid_until_ts
						THEN excluded.valid_until_ts ELSE federation_server_keys.valid_until_ts END,
					expired_ts = excluded.expired_ts, fetched_ts = excluded.fetched_ts`,
				k.ServerName, k.KeyID, k.PublicKey, k.ValidUntilTS, k.ExpiredTS, now)
			if err != nil {
				return fmt.Errorf("store key %s of %s: %w", k.KeyID, k.ServerName, err)
			}
		}
		return nil
	})
}

// Key returns one cached key, or ErrNotFound.
func (s *Store) Key(ctx context.Context, serverName, keyID string) (ServerKey, error) {
	k := ServerKey{ServerName: serverName, KeyID: keyID}
	err := s.db.Read().QueryRowContext(ctx, `SELECT public_key, valid_until_ts, expired_ts FROM federation_server_keys
		WHERE server_name = $1 AND key_id = $2`, serverName, keyID).Scan(&k.PublicKey, &k.ValidUntilTS, &k.ExpiredTS)
	if errors.Is(err, sql.ErrNoRows) {
		return ServerKey{}, ErrNotFound
	}
	if err != nil {
		return ServerKey{}, fmt.Errorf("load key %s of %s: %w", keyID, serverName, err)
	}
	return k, nil
}

// StoreKeyResponse keeps a server's signed key response for the notary,
// unless one valid for longer is already kept.
func (s *Store) StoreKeyResponse(ctx context.Context, serverName string, validUntilTS int64, response []byte) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO federation_key_responses (server_name, valid_until_ts, response_json) VALUES ($1, $2, $3)
			ON CONFLICT (server_name) DO UPDATE SET valid_until_ts = excluded.valid_until_ts, response_json = excluded.response_json
			WHERE excluded.valid_until_ts >= federation_key_responses.valid_until_ts`, serverName, validUntilTS, string(response))
		if err != nil {
			return fmt.Errorf("store key response of %s: %w", serverName, err)
		}
		return nil
	})
}

// KeyResponse returns a server's kept key response and its validity, or
// ErrNotFound.
func (s *Store) KeyResponse(ctx context.Context, serverName string) ([]byte, int64, error) {
	var js string
	var until int64
	err := s.db.Read().QueryRowContext(ctx, `SELECT response_json, valid_until_ts FROM federation_key_responses WHERE server_name = $1`, serverName).
		Scan(&js, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load key response of %s: %w", serverName, err)
	}
	return []byte(js), until, nil
}

// InboundTxn returns the answer given to a transaction already handled,
// or ErrNotFound.
func (s *Store) InboundTxn(ctx context.Context, origin, txnID string) ([]byte, error) {
	var js string
	err := s.db.Read().QueryRowContext(ctx, `SELECT response_json FROM federation_inbound_txns WHERE origin = $1 AND txn_id = $2`, origin, txnID).Scan(&js)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load inbound transaction: %w", err)
	}
	return []byte(js), nil
}

// StoreInboundTxn records the answer to a handled transaction; a second
// record of the same one keeps the first.
func (s *Store) StoreInboundTxn(ctx context.Context, origin, txnID string, response []byte) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO federation_inbound_txns (origin, txn_id, response_json, received_ts) VALUES ($1, $2, $3, $4)
			ON CONFLICT (origin, txn_id) DO NOTHING`, origin, txnID, string(response), s.now().UnixMilli())
		if err != nil {
			return fmt.Errorf("store inbound transaction: %w", err)
		}
		return nil
	})
}

// AddDestination records a destination of the outbound queue; adding one
// twice is harmless.
func (s *Store) AddDestination(ctx context.Context, serverName string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO federation_destinations (server_name, added_ts) VALUES ($1, $2)
			ON CONFLICT (server_name) DO NOTHING`, serverName, s.now().UnixMilli())
		if err != nil {
			return fmt.Errorf("add destination %s: %w", serverName, err)
		}
		return nil
	})
}

// Destinations lists the outbound queue's destinations.
func (s *Store) Destinations(ctx context.Context) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT server_name FROM federation_destinations ORDER BY server_name`)
	if err != nil {
		return nil, fmt.Errorf("list destinations: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list destinations: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
