// Package bustest opens buses for tests of the packages that use
// internal/bus: an embedded one in a temporary directory, closed when the
// test ends.
package bustest

import (
	"context"
	"io"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/bus"
)

// Embedded opens an embedded bus (no TCP listener) storing under a
// temporary directory, with its log discarded, and closes it at the end of
// the test.
func Embedded(t testing.TB) *bus.Bus {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := config.Bus{StoreDir: "nats", Prefix: "hs"}
	b, err := bus.Open(context.Background(), cfg, &config.Global{DataDir: t.TempDir()}, logrus.NewEntry(log))
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
