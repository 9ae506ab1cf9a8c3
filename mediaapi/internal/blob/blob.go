// Package blob keeps media files on disk, each named by the SHA-256 of its
// content, so that identical uploads are stored once. A file is streamed to
// a temporary file while it is hashed, then renamed into place: a reader
// never sees a half-written file, and memory use does not grow with the
// file's size.
//
// Layout under the root: tmp/ holds files being written; sha256/ab/cd/
// holds abcd… (the full lowercase hex hash).
package blob

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrTooLarge: the content passed the limit given to Put.
var ErrTooLarge = errors.New("content too large")

// Store is a directory of content-addressed files. It is safe for
// concurrent use, by several processes too (every step is a rename or a
// remove).
type Store struct {
	root string
}

// Open returns the store rooted at dir, creating its folders.
func Open(dir string) (*Store, error) {
	for _, d := range []string{"tmp", "sha256"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("open media store: %w", err)
		}
	}
	return &Store{root: dir}, nil
}

// Pending is content written to a temporary file and hashed, not yet in
// the store: Commit puts it there, Discard drops it. One of them must be
// called.
type Pending struct {
	s    *Store
	tmp  string
	done bool
	// SHA256 is the content's lowercase hex SHA-256.
	SHA256 string
	// Size is the content's length in bytes.
	Size int64
}

// Write streams r to a temporary file, hashing it. It fails with
// ErrTooLarge, keeping nothing, when r holds more than limit bytes.
func (s *Store) Write(r io.Reader, limit int64) (*Pending, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "upload-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	p := &Pending{s: s, tmp: f.Name()}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = ErrTooLarge
	}
	if err == nil {
		// The upload is acknowledged once committed: make it durable.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		p.Discard()
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("write temporary file: %w", err)
	}
	p.SHA256, p.Size = hex.EncodeToString(h.Sum(nil)), n
	return p, nil
}

// Open opens the pending content for reading (an antivirus scan, image
// decoding) before it is committed.
func (p *Pending) Open() (*os.File, error) { return os.Open(p.tmp) }

// Commit puts the content in the store under its hash. When the store
// already holds that content, the copy is dropped: it is stored once.
func (p *Pending) Commit() error {
	if p.done {
		return errors.New("commit media file: already committed or discarded")
	}
	p.done = true
	final := p.s.path(p.SHA256)
	if _, err := os.Stat(final); err == nil {
		// Same hash, same bytes: keep the file already there.
		_ = os.Remove(p.tmp)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		_ = os.Remove(p.tmp)
		return fmt.Errorf("commit media file: %w", err)
	}
	if err := os.Rename(p.tmp, final); err != nil {
		_ = os.Remove(p.tmp)
		return fmt.Errorf("commit media file: %w", err)
	}
	return nil
}

// Discard drops the pending content; after Commit it does nothing.
func (p *Pending) Discard() {
	if !p.done {
		p.done = true
		_ = os.Remove(p.tmp)
	}
}

// Put stores b (a thumbnail, small) and returns its hash.
func (s *Store) Put(r io.Reader, limit int64) (sha string, size int64, err error) {
	p, err := s.Write(r, limit)
	if err != nil {
		return "", 0, err
	}
	if err := p.Commit(); err != nil {
		return "", 0, err
	}
	return p.SHA256, p.Size, nil
}

// Open opens the file of content sha for reading; an error satisfying
// errors.Is(err, fs.ErrNotExist) when the store does not hold it.
func (s *Store) Open(sha string) (*os.File, error) {
	if !validHash(sha) {
		return nil, fmt.Errorf("open media file: bad hash %q: %w", sha, os.ErrNotExist)
	}
	return os.Open(s.path(sha))
}

// Has reports whether the store holds content sha.
func (s *Store) Has(sha string) bool {
	if !validHash(sha) {
		return false
	}
	_, err := os.Stat(s.path(sha))
	return err == nil
}

// Remove deletes the file of content sha; a file already gone is not an
// error.
func (s *Store) Remove(sha string) error {
	if !validHash(sha) {
		return fmt.Errorf("remove media file: bad hash %q", sha)
	}
	if err := os.Remove(s.path(sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove media file: %w", err)
	}
	return nil
}

// Count returns how many files the store holds, for tests and admins.
func (s *Store) Count() (int, error) {
	n := 0
	err := filepath.WalkDir(filepath.Join(s.root, "sha256"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count media files: %w", err)
	}
	return n, nil
}

func (s *Store) path(sha string) string {
	return filepath.Join(s.root, "sha256", sha[0:2], sha[2:4], sha)
}

// validHash reports whether sha is 64 lowercase hex digits, so that no
// name from the database can escape the store.
func validHash(sha string) bool {
	if len(sha) != 64 {
		return false
	}
	for _, c := range sha {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
