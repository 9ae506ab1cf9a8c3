package accounts

import (
	"context"
	"strings"
	"testing"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/testserver"
	"github.com/matrix-gouv/homeserver/config"
)

func newCreator(t *testing.T, srv *testserver.Server, cfg Config) (*Creator, *stats.Recorder) {
	t.Helper()
	cfg.HS, cfg.HTTP = srv.URL, matrix.NewHTTPClient(0)
	t.Cleanup(cfg.HTTP.CloseIdleConnections) // before the server stops
	rec := stats.NewRecorder()
	c, err := New(cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// checkUsers fails unless users are n distinct, logged-in users.
func checkUsers(t *testing.T, users []*User, n int) {
	t.Helper()
	if len(users) != n {
		t.Fatalf("got %d users, want %d", len(users), n)
	}
	ids := map[string]bool{}
	for _, u := range users {
		who, err := u.Whoami(context.Background())
		if err != nil {
			t.Fatalf("whoami %s: %v", u.Localpart, err)
		}
		if who.UserID != u.UserID || who.DeviceID != u.DeviceID || u.DeviceID == "" {
			t.Errorf("whoami says %s/%s, client has %s/%s", who.UserID, who.DeviceID, u.UserID, u.DeviceID)
		}
		ids[string(u.UserID)] = true
	}
	if len(ids) != n {
		t.Errorf("user IDs not distinct: %v", ids)
	}
}

func TestSharedSecret(t *testing.T) {
	srv := testserver.Start(t)
	c, rec := newCreator(t, srv, Config{SharedSecret: testserver.SharedSecret, Prefix: "ss", Concurrency: 3})
	users, err := c.Create(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	checkUsers(t, users, 5)
	if !strings.HasPrefix(users[0].Localpart, "ss-") || c.Method() != "shared-secret" {
		t.Errorf("localpart %q, method %q", users[0].Localpart, c.Method())
	}
	// A second device of the same user.
	d2, err := c.NewDevice(context.Background(), users[0])
	if err != nil {
		t.Fatal(err)
	}
	if d2.UserID != users[0].UserID || d2.DeviceID == users[0].DeviceID {
		t.Errorf("second device %s/%s", d2.UserID, d2.DeviceID)
	}
	snap := rec.Snapshot()
	counts := map[string]int{}
	for _, s := range snap.Series {
		counts[s.Name] = len(s.Samples)
	}
	if counts[SeriesRegister] != 5 || counts[SeriesLogin] != 6 {
		t.Errorf("setup series %v", counts)
	}
	// The users of a second Creator do not collide with the first's.
	c2, _ := newCreator(t, srv, Config{SharedSecret: testserver.SharedSecret})
	more, err := c2.Create(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	checkUsers(t, more, 2)
}

func TestWrongSharedSecret(t *testing.T) {
	srv := testserver.Start(t)
	c, _ := newCreator(t, srv, Config{SharedSecret: "wrong"})
	_, err := c.Create(context.Background(), 2)
	if err == nil || matrix.ErrCode(err) != "M_FORBIDDEN" {
		t.Errorf("wrong secret: %v (code %q)", err, matrix.ErrCode(err))
	}
}

func TestRegistrationToken(t *testing.T) {
	srv := testserver.Start(t, func(c *config.Config) { c.Client.Registration.Enabled = true })
	srv.CreateRegistrationToken(t, "letmein", 10)
	c, _ := newCreator(t, srv, Config{RegistrationToken: "letmein"})
	users, err := c.Create(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	checkUsers(t, users, 3)
	if c.Method() != "registration-token" {
		t.Error(c.Method())
	}
	bad, _ := newCreator(t, srv, Config{RegistrationToken: "nope"})
	if _, err := bad.Create(context.Background(), 1); err == nil {
		t.Error("an unknown token registered a user")
	}
}

func TestOpenRegistration(t *testing.T) {
	srv := testserver.Start(t, func(c *config.Config) {
		c.Client.Registration.Enabled = true
		c.Client.Registration.AllowDummy = true
	})
	c, _ := newCreator(t, srv, Config{})
	users, err := c.Create(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	checkUsers(t, users, 2)
}

func TestClosedRegistration(t *testing.T) {
	srv := testserver.Start(t) // registration closed; only the shared secret works
	c, _ := newCreator(t, srv, Config{})
	_, err := c.Create(context.Background(), 1)
	if err == nil {
		t.Fatal("registered on a closed server")
	}
	t.Logf("closed registration: %v", err)

	// Token registration against a server that only allows dummy would
	// name the flows it offers; here, with registration on but no
	// token given, the tool says what to pass.
	srv2 := testserver.Start(t, func(c *config.Config) { c.Client.Registration.Enabled = true })
	c2, _ := newCreator(t, srv2, Config{})
	_, err = c2.Create(context.Background(), 1)
	if err == nil || !strings.Contains(err.Error(), "--registration-token") {
		t.Errorf("token-only server without a token: %v", err)
	}
}
