// Package storage holds the media component's tables: media (local uploads,
// pending async uploads and cached remote media) and media_thumbnails. One
// file per table; each query is written once for both engines. The bytes
// themselves are files on disk (mediaapi/internal/blob); these rows say
// which media ids exist and which file each points at.
package storage

import (
	"errors"
	"time"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Sentinel errors of the store.
var (
	// ErrNotFound: no such media item or thumbnail.
	ErrNotFound = errors.New("media not found")
	// ErrExists: the media id is taken.
	ErrExists = errors.New("media id already exists")
	// ErrAlreadyUploaded: an async upload's content has already arrived.
	ErrAlreadyUploaded = errors.New("media already uploaded")
	// ErrQuotaExceeded: the upload would take the user past their quota.
	ErrQuotaExceeded = errors.New("media quota exceeded")
	// ErrTooManyPending: the user already has as many pending async
	// uploads as allowed.
	ErrTooManyPending = errors.New("too many pending uploads")
)

// Store is the media component's database.
type Store struct {
	db  *storage.DB
	now func() time.Time
}

// New returns a store on db; the schema is already migrated by storage.Open.
func New(db *storage.DB) *Store { return &Store{db: db, now: time.Now} }

func (s *Store) nowMS() int64 { return s.now().UnixMilli() }
