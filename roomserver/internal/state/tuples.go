package state

import (
	"context"
	"database/sql"
	"sync"

	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Tuples interns (type, state key) pairs, remembering them in memory:
// nids never change once given.
type Tuples struct {
	store *storage.Store

	mu    sync.Mutex // guards known
	known map[tupleKey]storage.StateKeyNIDs
}

type tupleKey struct{ typ, stateKey string }

// NewTuples returns an interning cache over store.
func NewTuples(store *storage.Store) *Tuples {
	return &Tuples{store: store, known: map[tupleKey]storage.StateKeyNIDs{}}
}

// Intern returns the nids of a pair, creating them in tx if new. The pair
// is remembered only once tx commits... or not at all: a rolled-back nid
// is simply looked up again.
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
