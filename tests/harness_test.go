// Package tests holds the cross-component integration tests: the whole
// server started in-process over real HTTP on each storage engine, driven
// by real clients (mautrix-go). Helpers live in this file; each test file
// covers one capability.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/matrix-gouv/homeserver/cmd/homeserver/app"
	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// serverName is the server name of every test server.
const serverName = "test.local"

// sharedSecret is the registration shared secret of test servers.
const sharedSecret = "test-shared-secret"

// testPassword passes the default password policy.
const testPassword = "correct horse battery"

// Server is a homeserver running in-process for one test.
type Server struct {
	t   testing.TB
	Cfg *config.Config
	app *app.App
	// URL is the client API's base URL. It stays the same across
	// restarts; goroutines that run during one read it through url().
	URL string
	// mu guards URL while the server restarts.
	mu sync.Mutex
}

func (s *Server) url() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.URL
}

// testConfig is a configuration for a server on dbURL in a temp dir, with
// cheap password hashing and the shared secret set. mutate adjusts it.
func testConfig(t testing.TB, dbURL string, mutate ...func(*config.Config)) *config.Config {
	t.Helper()
	key, err := config.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.Global.ServerName = serverName
	cfg.Global.SigningKey = key.String()
	cfg.Global.DataDir = t.TempDir()
	cfg.Database.URL = dbURL
	cfg.Client.Listen = "127.0.0.1:0"
	cfg.Client.Registration.SharedSecret = sharedSecret
	cfg.Client.Auth.Argon2Memory = 1024
	cfg.Client.Auth.Argon2Time = 1
	// Tests register and log in far faster than people do.
	cfg.Client.RateLimits.Register = config.RateLimit{PerSecond: 1000, Burst: 1000}
	// And set up hundreds of rooms in a second (tests of the limit set
	// their own).
	cfg.Client.RateLimits.Request = config.RateLimit{PerSecond: 1000, Burst: 1000}
	cfg.Federation.Listen = "off"
	cfg.Logging.Level = "warn"
	for _, m := range mutate {
		m(cfg)
	}
	cfg.Defaults()
	if err := cfg.Verify(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// StartServer starts a server on dbURL and stops it when the test ends.
func StartServer(t testing.TB, dbURL string, mutate ...func(*config.Config)) *Server {
	t.Helper()
	s := &Server{t: t, Cfg: testConfig(t, dbURL, mutate...)}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// engines runs fn on a fresh server per storage engine.
func engines(t *testing.T, fn func(t *testing.T, s *Server), mutate ...func(*config.Config)) {
	storagetest.Engines(t, func(t *testing.T, url string) {
		fn(t, StartServer(t, url, mutate...))
	})
}

func (s *Server) start() {
	s.t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	log.SetOutput(testWriter{s.t})
	a, err := app.New(s.Cfg, app.Options{Log: logrus.NewEntry(log)})
	if err != nil {
		s.t.Fatalf("build server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		s.t.Fatalf("start server: %v", err)
	}
	s.mu.Lock()
	s.app, s.URL = a, a.ClientURL()
	s.mu.Unlock()
}

// Stop stops the server gracefully; stopping twice is harmless.
func (s *Server) Stop() {
	if s.app == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.app.Stop(ctx); err != nil {
		s.t.Errorf("stop server: %v", err)
	}
	s.app = nil
}

// Restart stops the server and starts a new one on the same data and the
// same address, as an admin restarting the process would.
func (s *Server) Restart() {
	s.t.Helper()
	s.Cfg.Client.Listen = strings.TrimPrefix(s.URL, "http://")
	s.Stop()
	s.start()
}

// testWriter sends server logs to the test log, shown only on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Client returns a mautrix client of the server, logged in as nobody.
func (s *Server) Client() *mautrix.Client {
	s.t.Helper()
	c, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// Register creates localpart through the shared-secret admin endpoint and
// returns a client logged in as the new user on its first device.
func (s *Server) Register(localpart string) *mautrix.Client {
	s.t.Helper()
	resp, err := s.RegisterErr(localpart)
	if err != nil {
		s.t.Fatalf("register %s: %v", localpart, err)
	}
	c := s.Client()
	c.SetCredentials(resp.UserID, resp.AccessToken)
	c.DeviceID = resp.DeviceID
	return c
}

// RegisterErr is Register's request, returning the server's answer.
func (s *Server) RegisterErr(localpart string) (*mautrix.RespRegister, error) {
	admin := &synapseadmin.Client{Client: s.Client()}
	return admin.SharedSecretRegister(context.Background(), sharedSecret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart, Password: testPassword,
	})
}

// CreateRegistrationToken stores a registration token the way the admin
// CLI does: through the component, on its own database handle.
func (s *Server) CreateRegistrationToken(token string, uses int) error {
	s.t.Helper()
	hs, err := homeserver.New(homeserver.Deps{Global: &s.Cfg.Global, Config: &s.Cfg.Client,
		DB: storagetest.Open(s.t, s.Cfg.Database.URL), Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		return err
	}
	return hs.CreateRegistrationToken(context.Background(), token, uses)
}

// Login logs userID in on a new device with the test password.
func (s *Server) Login(userID id.UserID) *mautrix.Client {
	s.t.Helper()
	c := s.Client()
	_, err := c.Login(context.Background(), &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: userID.String()},
		Password:         testPassword,
		StoreCredentials: true,
	})
	if err != nil {
		s.t.Fatalf("login %s: %v", userID, err)
	}
	return c
}

// Response is a raw HTTP answer, for tests of exact status and errcode.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// Do sends a raw request; body is sent as is when it is a string or
// []byte, else as JSON. token may be empty.
func (s *Server) Do(method, path, token string, body any) Response {
	s.t.Helper()
	r, err := s.tryDo(method, path, token, body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// tryDo is Do returning transport errors (a server that is restarting)
// instead of failing the test; safe to call from any goroutine.
func (s *Server) tryDo(method, path, token string, body any) (Response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.url()+path, r)
	if err != nil {
		return Response{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := Response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	return out, nil
}

// Expect fails the test unless the response has the status and errcode
// (errcode "" means success: no errcode in the body).
func (r Response) Expect(t testing.TB, status int, errcode string) Response {
	t.Helper()
	got, _ := r.Body["errcode"].(string)
	if r.Status != status || got != errcode {
		t.Fatalf("got %d %q, want %d %q; body: %s", r.Status, got, status, errcode, r.Raw)
	}
	return r
}

// errcode returns the Matrix errcode of a mautrix error, "" for nil.
func errcode(err error) string {
	if err == nil {
		return ""
	}
	var herr mautrix.HTTPError
	if errors.As(err, &herr) && herr.RespError != nil {
		return herr.RespError.ErrCode
	}
	return "not a Matrix error: " + err.Error()
}

func ctx() context.Context { return context.Background() }

// uiaChallenge is the body of a 401 UIA answer.
type uiaChallenge struct {
	Flows []struct {
		Stages []mautrix.AuthType `json:"stages"`
	} `json:"flows"`
	Session   string   `json:"session"`
	Completed []string `json:"completed"`
}

func parseUIA(t testing.TB, body string) uiaChallenge {
	t.Helper()
	var c uiaChallenge
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("UIA challenge %q: %v", body, err)
	}
	return c
}

func mustParseURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// eventually polls cond until it holds, failing the test after 15 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventuallyEvery(t, what, 10*time.Millisecond, cond)
}

// eventuallyEvery is eventually polling every period (for a cond that
// asks the server, which rate-limits clients).
func eventuallyEvery(t testing.TB, what string, period time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 15 s", what)
		}
		time.Sleep(period)
	}
}
