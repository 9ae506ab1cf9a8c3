package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
)

// envTestNATS names the external NATS (with JetStream) the tests also run
// against, e.g. nats://127.0.0.1:4222.
const envTestNATS = "HOMESERVER_TEST_NATS"

func testLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// randomPrefix keeps tests apart on a shared NATS.
func randomPrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// openEmbedded opens an embedded bus storing under dir, closed at cleanup.
func openEmbedded(t testing.TB, dir, prefix string) *Bus {
	t.Helper()
	cfg := config.Bus{StoreDir: "nats", Prefix: prefix}
	b, err := Open(context.Background(), cfg, &config.Global{DataDir: dir}, testLog())
	if err != nil {
		t.Fatalf("open embedded bus: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close bus: %v", err)
		}
	})
	return b
}

// openExternal opens a bus on the NATS at url with a fresh prefix, and
// deletes its streams at cleanup.
func openExternal(t *testing.T, url string) *Bus {
	t.Helper()
	cfg := config.Bus{URL: url, Prefix: randomPrefix(t)}
	b, err := Open(context.Background(), cfg, &config.Global{DataDir: t.TempDir()}, testLog())
	if err != nil {
		t.Fatalf("open bus on %s: %v", url, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range Streams() {
			if err := b.js.DeleteStream(ctx, b.StreamName(s.Name)); err != nil {
				t.Errorf("delete stream %s: %v", b.StreamName(s.Name), err)
			}
		}
		if err := b.Close(); err != nil {
			t.Errorf("close bus: %v", err)
		}
	})
	return b
}

// eachBus runs f on an embedded bus and, when HOMESERVER_TEST_NATS is set,
// on the external NATS it names.
func eachBus(t *testing.T, f func(t *testing.T, b *Bus)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) {
		f(t, openEmbedded(t, t.TempDir(), randomPrefix(t)))
	})
	t.Run("external", func(t *testing.T) {
		url := os.Getenv(envTestNATS)
		if url == "" {
			t.Skip(envTestNATS + " is not set: set it to a NATS with JetStream (nats://127.0.0.1:4222) to run these tests against it")
		}
		f(t, openExternal(t, url))
	})
}

func TestOpenEmbeddedHasNoListener(t *testing.T) {
	b := openEmbedded(t, t.TempDir(), "hs")
	if a := b.server.Addr(); a != nil {
		t.Fatalf("embedded NATS listens on %s; want no listener", a)
	}
	ctx := context.Background()
	for _, s := range Streams() {
		st, err := b.js.Stream(ctx, b.StreamName(s.Name))
		if err != nil {
			t.Fatalf("stream %s: %v", s.Name, err)
		}
		got := st.CachedInfo().Config
		if got.Retention != s.Retention || got.Storage != s.Storage || got.MaxAge != s.MaxAge || got.Duplicates != s.Duplicates {
			t.Errorf("stream %s: got %v/%v/%s/%s, want %v/%v/%s/%s", got.Name,
				got.Retention, got.Storage, got.MaxAge, got.Duplicates, s.Retention, s.Storage, s.MaxAge, s.Duplicates)
		}
		if len(got.Subjects) != 1 || got.Subjects[0] != "hs."+s.Subjects[0] {
			t.Errorf("stream %s: subjects %v, want [hs.%s]", got.Name, got.Subjects, s.Subjects[0])
		}
	}
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatalf("ensure streams again: %v", err)
	}
}

func TestOpenEmbeddedListen(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Bus{StoreDir: "nats", Prefix: "hs", Listen: "127.0.0.1:0"}
	b, err := Open(context.Background(), cfg, &config.Global{DataDir: dir}, testLog())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer b.Close()
	a := b.server.Addr()
	if a == nil {
		t.Fatal("no listener, want one on 127.0.0.1")
	}
	nc, err := nats.Connect("nats://" + a.String())
	if err != nil {
		t.Fatalf("connect over TCP: %v", err)
	}
	nc.Close()
}

func TestOpenRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Bus
	}{
		{"empty prefix", config.Bus{StoreDir: "nats"}},
		{"prefix with a dot", config.Bus{StoreDir: "nats", Prefix: "a.b"}},
		{"prefix with a wildcard", config.Bus{StoreDir: "nats", Prefix: "a*"}},
		{"no store dir", config.Bus{Prefix: "hs"}},
		{"bad listen", config.Bus{StoreDir: "nats", Prefix: "hs", Listen: "localhost"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Open(context.Background(), tt.cfg, &config.Global{DataDir: t.TempDir()}, testLog())
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded, want an error")
			}
		})
	}
}

func TestRestartKeepsMessages(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := config.Bus{StoreDir: "nats", Prefix: "hs"}
	global := &config.Global{DataDir: dir}
	subject := Subject(SubjectRoomserverOutput, "0")

	b, err := Open(ctx, cfg, global, testLog())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := b.Publish(ctx, subject, "$event1", map[string]string{"event_id": "$event1"}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	b, err = Open(ctx, cfg, global, testLog())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer b.Close()
	st, err := b.js.Stream(ctx, b.StreamName(StreamRoomserverOutput))
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	msg, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("get message 1 after restart: %v", err)
	}
	if string(msg.Data) != `{"event_id":"$event1"}` || msg.Header.Get(jetstream.MsgIDHeader) != "$event1" {
		t.Fatalf("after restart: got %s (id %q)", msg.Data, msg.Header.Get(jetstream.MsgIDHeader))
	}
}

func TestPartition(t *testing.T) {
	tests := []struct {
		key  string
		n    int
		want string
	}{
		{"!room:example.org", 0, "0"},
		{"!room:example.org", 1, "0"},
	}
	for _, tt := range tests {
		if got := Partition(tt.key, tt.n); got != tt.want {
			t.Errorf("Partition(%q, %d) = %s, want %s", tt.key, tt.n, got, tt.want)
		}
	}
	seen := map[string]bool{}
	for _, key := range []string{"!a:x", "!b:x", "!c:x", "!d:x", "!e:x", "!f:x", "!g:x", "!h:x"} {
		p := Partition(key, 4)
		if p != Partition(key, 4) {
			t.Fatalf("Partition(%q) is not stable", key)
		}
		if !slices.Contains([]string{"0", "1", "2", "3"}, p) {
			t.Fatalf("Partition(%q, 4) = %s, out of range", key, p)
		}
		seen[p] = true
	}
	if len(seen) < 2 {
		t.Errorf("8 keys all fell in partition %v", seen)
	}
}
