package state

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Tuples interns (type, state key) pairs, remembering them in memory:
// nids never change once given.
type Tuples struct {
	store *storage.Store

	mu    sync.Mutex // guards known and types
	known map[tupleKey]storage.StateKeyNIDs
	types map[string]int64
}

type tupleKey struct{ typ, stateKey string }

// NewTuples returns an interning cache over store.
func NewTuples(store *storage.Store) *Tuples {
	return &Tuples{store: store, known: map[tupleKey]storage.StateKeyNIDs{}, types: map[string]int64{}}
}

// Intern returns the nids of a pair, creating them in tx if new. The
// caller calls Remember once tx has committed: a nid created by a
// transaction that rolls back must not be remembered.
func (t *Tuples) Intern(ctx context.Context, tx *sql.Tx, typ, stateKey string) (storage.StateKeyNIDs, error) {
	k := tupleKey{typ, stateKey}
	t.mu.Lock()
	nids, ok := t.known[k]
	t.mu.Unlock()
	if ok {
		return nids, nil
	}
	return t.store.InternTuple(ctx, tx, typ, stateKey)
}

// Remember records pairs interned by a committed transaction.
func (t *Tuples) Remember(typ, stateKey string, nids storage.StateKeyNIDs) {
	t.mu.Lock()
	t.known[tupleKey{typ, stateKey}] = nids
	t.mu.Unlock()
}

// Lookup returns the nids of a pair without creating it; ok is false if
// no state ever had that pair.
func (t *Tuples) Lookup(ctx context.Context, typ, stateKey string) (storage.StateKeyNIDs, bool, error) {
	k := tupleKey{typ, stateKey}
	t.mu.Lock()
	nids, ok := t.known[k]
	t.mu.Unlock()
	if ok {
		return nids, true, nil
	}
	nids, ok, err := t.store.LookupTuple(ctx, typ, stateKey)
	if err == nil && ok {
		t.Remember(typ, stateKey, nids)
	}
	return nids, ok, err
}

// InternType returns the nid of an event type, creating it in tx if new;
// the caller calls RememberType once tx has committed.
func (t *Tuples) InternType(ctx context.Context, tx *sql.Tx, typ string) (int64, error) {
	t.mu.Lock()
	nid, ok := t.types[typ]
	t.mu.Unlock()
	if ok {
		return nid, nil
	}
	return t.store.InternType(ctx, tx, typ)
}

// RememberType records a type interned by a committed transaction.
func (t *Tuples) RememberType(typ string, nid int64) {
	t.mu.Lock()
	t.types[typ] = nid
	t.mu.Unlock()
}

// Preload interns pairs (in a transaction of their own) and remembers
// them: a pair that may well exist in no room, but that a hot path looks
// up at every event, is then answered from memory instead of by a query
// that finds nothing (Lookup does not remember absence: another process
// may intern the pair at any time).
func (t *Tuples) Preload(ctx context.Context, pairs ...storage.TypeStateKey) error {
	var nids map[storage.TypeStateKey]storage.StateKeyNIDs
	err := t.store.Write(ctx, func(tx *sql.Tx) error {
		var err error
		nids, err = t.store.InternTuples(ctx, tx, pairs)
		return err
	})
	if err != nil {
		return fmt.Errorf("intern %d state keys: %w", len(pairs), err)
	}
	for p, n := range nids {
		t.Remember(p.Type, p.StateKey, n)
	}
	return nil
}
