// Package storage holds the roomserver's tables: rooms, interned event
// types and state keys, events, state snapshots, forward extremities,
// current memberships and the output outbox. One file per table; each
// query is written once for both engines.
//
// Numeric ids (nids) are the roomserver's own and never leave it.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Sentinel errors of the store.
var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("not found")
	// ErrRoomExists: a room with that id is already stored.
	ErrRoomExists = errors.New("room already exists")
)

// Store is the roomserver's database.
type Store struct {
	db *storage.DB
}

// New returns a store on db, whose schema storage.Open has migrated.
func New(db *storage.DB) *Store { return &Store{db: db} }

// Write runs fn in a write transaction (serialised on SQLite).
func (s *Store) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.db.Write(ctx, fn)
}

// WriteBatched runs fn in a write transaction shared with other writes
// arriving at the same time (storage.DB.WriteBatched): fn may run twice.
func (s *Store) WriteBatched(ctx context.Context, fn func(b *storage.Batch) error) error {
	return s.db.WriteBatched(ctx, fn)
}

// Read is the pool, for queries outside a transaction.
func (s *Store) Read() storage.Querier { return s.db.Read() }

// StateKeyNIDs is a (type, state key) pair interned.
type StateKeyNIDs struct {
	TypeNID     int64
	StateKeyNID int64
}

// intern returns the nid of value in table, creating it if new. The
// insert may race with another process: on conflict it reads again.
func intern(ctx context.Context, q storage.Querier, table, nidCol, valCol, value string) (int64, error) {
	var nid int64
	err := q.QueryRowContext(ctx, `SELECT `+nidCol+` FROM `+table+` WHERE `+valCol+` = $1`, value).Scan(&nid)
	if err == nil {
		return nid, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("look up %s: %w", table, err)
	}
	if _, err := q.ExecContext(ctx, `INSERT INTO `+table+` (`+valCol+`) VALUES ($1) ON CONFLICT DO NOTHING`, value); err != nil {
		return 0, fmt.Errorf("insert %s: %w", table, err)
	}
	if err := q.QueryRowContext(ctx, `SELECT `+nidCol+` FROM `+table+` WHERE `+valCol+` = $1`, value).Scan(&nid); err != nil {
		return 0, fmt.Errorf("look up %s: %w", table, err)
	}
	return nid, nil
}

// InternTuple returns the nids of an event type and state key.
func (s *Store) InternTuple(ctx context.Context, tx *sql.Tx, eventType, stateKey string) (StateKeyNIDs, error) {
	t, err := s.InternType(ctx, tx, eventType)
	if err != nil {
		return StateKeyNIDs{}, err
	}
	k, err := intern(ctx, tx, "roomserver_state_keys", "state_key_nid", "state_key", stateKey)
	if err != nil {
		return StateKeyNIDs{}, err
	}
	return StateKeyNIDs{TypeNID: t, StateKeyNID: k}, nil
}

// bulkRows is how many rows one multi-row statement writes or reads:
// few enough to stay far below both engines' limits on parameters.
const bulkRows = 500

// TypeStateKey is an event type and a state key, not yet interned.
type TypeStateKey struct {
	Type, StateKey string
}

// InternTuples interns many pairs at once, with a few statements per
// bulkRows values instead of several per pair: a remote join brings
// thousands of state events.
func (s *Store) InternTuples(ctx context.Context, tx *sql.Tx, pairs []TypeStateKey) (map[TypeStateKey]StateKeyNIDs, error) {
	var types, keys []string
	seenT, seenK := map[string]bool{}, map[string]bool{}
	for _, p := range pairs {
		if !seenT[p.Type] {
			seenT[p.Type] = true
			types = append(types, p.Type)
		}
		if !seenK[p.StateKey] {
			seenK[p.StateKey] = true
			keys = append(keys, p.StateKey)
		}
	}
	typeNIDs, err := internMany(ctx, tx, "roomserver_event_types", "type_nid", "event_type", types)
	if err != nil {
		return nil, err
	}
	keyNIDs, err := internMany(ctx, tx, "roomserver_state_keys", "state_key_nid", "state_key", keys)
	if err != nil {
		return nil, err
	}
	out := make(map[TypeStateKey]StateKeyNIDs, len(pairs))
	for _, p := range pairs {
		out[p] = StateKeyNIDs{TypeNID: typeNIDs[p.Type], StateKeyNID: keyNIDs[p.StateKey]}
	}
	return out, nil
}

// internMany is intern for many distinct values.
func internMany(ctx context.Context, tx *sql.Tx, table, nidCol, valCol string, values []string) (map[string]int64, error) {
	out := make(map[string]int64, len(values))
	for len(values) > 0 {
		chunk := values[:min(len(values), bulkRows)]
		values = values[len(chunk):]
		args := make([]any, len(chunk))
		for i, v := range chunk {
			args[i] = v
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (`+valCol+`) VALUES `+storage.ValueRows(1, len(chunk), 1)+` ON CONFLICT DO NOTHING`, args...); err != nil {
			return nil, fmt.Errorf("insert %s: %w", table, err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+nidCol+`, `+valCol+` FROM `+table+` WHERE `+valCol+` IN (`+storage.Placeholders(1, len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("look up %s: %w", table, err)
		}
		for rows.Next() {
			var nid int64
			var v string
			if err := rows.Scan(&nid, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan %s: %w", table, err)
			}
			out[v] = nid
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("look up %s: %w", table, err)
		}
	}
	return out, nil
}

// InternType returns the nid of an event type.
func (s *Store) InternType(ctx context.Context, tx *sql.Tx, eventType string) (int64, error) {
	return intern(ctx, tx, "roomserver_event_types", "type_nid", "event_type", eventType)
}

// LookupTuple returns the nids of a type and state key without creating
// them; ok is false when either is unknown (so no state has that key).
func (s *Store) LookupTuple(ctx context.Context, eventType, stateKey string) (k StateKeyNIDs, ok bool, err error) {
	err = s.db.Read().QueryRowContext(ctx, `SELECT t.type_nid, k.state_key_nid FROM roomserver_event_types t, roomserver_state_keys k
		WHERE t.event_type = $1 AND k.state_key = $2`, eventType, stateKey).Scan(&k.TypeNID, &k.StateKeyNID)
	if errors.Is(err, sql.ErrNoRows) {
		return StateKeyNIDs{}, false, nil
	}
	if err != nil {
		return StateKeyNIDs{}, false, fmt.Errorf("look up state key: %w", err)
	}
	return k, true, nil
}
