// Package storage holds the homeserver component's tables: accounts,
// devices, access and refresh tokens, registration tokens, UIA sessions,
// device-list changes, the E2EE rows that die with a device, room
// transaction ids (idempotent sends) and forgotten rooms. One file per
// table; each query is written once for both engines.
//
// Operations that touch several tables (register, log in, delete a device)
// are methods here so that each runs in one transaction.
package storage

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Sentinel errors of the store.
var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("not found")
	// ErrUserExists: the user id is taken (or was, by a deactivated account).
	ErrUserExists = errors.New("user id already taken")
	// ErrTokenUnusable: a registration token is unknown, expired or used up.
	ErrTokenUnusable = errors.New("registration token not usable")
)

// Store is the homeserver component's database.
type Store struct {
	db  *storage.DB
	now func() time.Time
	// sessionsGen moves after every commit that revokes access tokens, so
	// that caches of token lookups know to ask again.
	sessionsGen atomic.Uint64
}

// SessionsGeneration is a number that moves after every change of this
// store that revokes access tokens (logout, device deletion, refresh,
// deactivation): a token looked up at one generation holds while it
// stays.
func (s *Store) SessionsGeneration() uint64 { return s.sessionsGen.Load() }

// sessionsChanged is deferred by the methods that revoke tokens: it runs
// after their commit.
func (s *Store) sessionsChanged() { s.sessionsGen.Add(1) }

// New returns a store on db; the schema is already migrated by storage.Open.
func New(db *storage.DB) *Store { return &Store{db: db, now: time.Now} }

func (s *Store) nowMS() int64 { return s.now().UnixMilli() }

// Now is the store's clock, so that expiry times are computed on one clock.
func (s *Store) Now() time.Time { return s.now() }
