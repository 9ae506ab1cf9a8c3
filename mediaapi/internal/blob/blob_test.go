package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteCommitDedup(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello media")
	sum := sha256.Sum256(data)
	for i := 0; i < 2; i++ {
		p, err := s.Write(bytes.NewReader(data), 100)
		if err != nil {
			t.Fatal(err)
		}
		if p.SHA256 != hex.EncodeToString(sum[:]) || p.Size != int64(len(data)) {
			t.Fatalf("pending %s %d", p.SHA256, p.Size)
		}
		if err := p.Commit(); err != nil {
			t.Fatal(err)
		}
		p.Discard() // after Commit: nothing
	}
	if n, err := s.Count(); err != nil || n != 1 {
		t.Fatalf("%d files for two writes of one content (%v)", n, err)
	}
	f, err := s.Open(hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("read %q", got)
	}
	if tmp, _ := os.ReadDir(filepath.Join(s.root, "tmp")); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	if err := s.Remove(hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if s.Has(hex.EncodeToString(sum[:])) {
		t.Fatal("removed file still there")
	}
}

func TestWriteLimit(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		size, limit int
		tooLarge    bool
	}{{10, 10, false}, {11, 10, true}, {0, 10, false}, {1 << 20, 1000, true}}
	for _, tt := range tests {
		p, err := s.Write(bytes.NewReader(make([]byte, tt.size)), int64(tt.limit))
		if tt.tooLarge != errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d bytes, limit %d: %v", tt.size, tt.limit, err)
		}
		if p != nil {
			p.Discard()
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(s.root, "tmp")); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

func TestBadHashes(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, sha := range []string{"", "../../etc/passwd", "ABCDEF", string(bytes.Repeat([]byte("g"), 64))} {
		if _, err := s.Open(sha); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q): %v", sha, err)
		}
		if s.Remove(sha) == nil {
			t.Errorf("Remove(%q) succeeded", sha)
		}
	}
}
