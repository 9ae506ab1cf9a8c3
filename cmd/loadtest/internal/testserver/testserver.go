// Package testserver gives the load tool's tests a server to load: this
// project's homeserver started in-process (Start), the way
// tests/harness_test.go does it (SQLite in a temp dir, a shared secret,
// cheap password hashing, no rate limits), and Fake, an in-memory stand-in
// for the endpoints the homeserver does not serve yet. Only tests import
// it; the loadtest binary never does, so that the tool stays a plain
// Matrix client of any server.
package testserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/cmd/homeserver/app"
	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// SharedSecret is the registration shared secret of every test server.
const SharedSecret = "loadtest-shared-secret"

// Server is a homeserver running in-process for one test.
type Server struct {
	// URL is the client API's base URL.
	URL string
	// Cfg is the server's configuration.
	Cfg *config.Config
}

// Start starts a server on a fresh SQLite database and stops it when the
// test ends. mutate adjusts the configuration before defaults apply.
func Start(t testing.TB, mutate ...func(*config.Config)) *Server {
	t.Helper()
	key, err := config.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.Global.ServerName = "loadtest.local"
	cfg.Global.SigningKey = key.String()
	cfg.Global.DataDir = t.TempDir()
	cfg.Database.URL = storagetest.SQLiteURL(t)
	cfg.Client.Listen = "127.0.0.1:0"
	cfg.Client.Registration.SharedSecret = SharedSecret
	cfg.Client.Auth.Argon2Memory = 1024
	cfg.Client.Auth.Argon2Time = 1
	// A load test is many requests from one address and one user.
	cfg.Client.RateLimits.Register = config.RateLimit{PerSecond: 0, Burst: 1}
	cfg.Client.RateLimits.Request = config.RateLimit{PerSecond: 0, Burst: 1}
	cfg.Federation.Listen = "off"
	cfg.Logging.Level = "warn"
	for _, m := range mutate {
		m(cfg)
	}
	cfg.Defaults()
	if err := cfg.Verify(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	log.SetOutput(testWriter{t})
	a, err := app.New(cfg, app.Options{Log: logrus.NewEntry(log)})
	if err != nil {
		t.Fatalf("build server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("stop server: %v", err)
		}
	})
	return &Server{URL: a.ClientURL(), Cfg: cfg}
}

// CreateRegistrationToken stores a registration token the way the admin
// CLI does: through the component, on its own database handle.
func (s *Server) CreateRegistrationToken(t testing.TB, token string, uses int) {
	t.Helper()
	hs, err := homeserver.New(homeserver.Deps{Global: &s.Cfg.Global, Config: &s.Cfg.Client,
		DB: storagetest.Open(t, s.Cfg.Database.URL), Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	if err := hs.CreateRegistrationToken(context.Background(), token, uses); err != nil {
		t.Fatal(err)
	}
}

// testWriter sends server logs to the test log, shown only on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
