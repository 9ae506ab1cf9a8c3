package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver"
	"github.com/matrix-gouv/homeserver/internal/storage"
)

// testConfig returns a verified configuration in a fresh data directory,
// listening on free loopback ports, federation with a self-signed pair.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	key, err := config.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.Global.ServerName = "test.local"
	cfg.Global.SigningKey = key.String()
	cfg.Global.DataDir = t.TempDir()
	cfg.Client.Listen = "127.0.0.1:0"
	cfg.Federation.Listen = "127.0.0.1:0"
	cfg.Logging.Level = "warn"
	cfg.Defaults()
	if err := cfg.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := config.WriteSelfSignedCert(cfg.Global.Path(cfg.Federation.TLSCert), cfg.Global.Path(cfg.Federation.TLSKey), cfg.Global.ServerName); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testLog sends the server's logs to the test log.
func testLog(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	l.SetOutput(testWriter{t})
	return logrus.NewEntry(l)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// start builds and starts an App, stopping it when the test ends.
func start(t *testing.T, cfg *config.Config, components []string) *App {
	t.Helper()
	a, err := New(cfg, Options{Components: components, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { stop(t, a) })
	return a
}

func stop(t *testing.T, a *App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// get GETs url (TLS without verification: the test's certificate is
// self-signed) and returns the status, headers and body.
func get(t *testing.T, method, url string) (int, http.Header, []byte) {
	t.Helper()
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func TestStartServesAndStops(t *testing.T) {
	cfg := testConfig(t)
	a := start(t, cfg, nil)
	if !strings.HasPrefix(a.ClientURL(), "http://127.0.0.1:") || strings.HasSuffix(a.ClientURL(), ":0") {
		t.Fatalf("ClientURL = %q", a.ClientURL())
	}
	if !strings.HasPrefix(a.FederationURL(), "https://127.0.0.1:") || strings.HasSuffix(a.FederationURL(), ":0") {
		t.Fatalf("FederationURL = %q", a.FederationURL())
	}

	status, _, body := get(t, "GET", a.ClientURL()+"/health")
	if status != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("/health = %d %s", status, body)
	}
	// The client component's routes are mounted on the client listener.
	if status, _, body := get(t, "GET", a.ClientURL()+"/_matrix/client/versions"); status != 200 {
		t.Errorf("/versions = %d %s", status, body)
	}
	// Unknown paths and methods are Matrix errors, with CORS headers.
	status, header, body := get(t, "GET", a.ClientURL()+"/_matrix/client/v3/nope")
	if status != 404 || !strings.Contains(string(body), "M_UNRECOGNIZED") || header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("unknown path = %d %v %s", status, header, body)
	}
	if status, _, body := get(t, "DELETE", a.ClientURL()+"/health"); status != 405 || !strings.Contains(string(body), "M_UNRECOGNIZED") {
		t.Errorf("wrong method = %d %s", status, body)
	}
	if status, header, _ := get(t, "OPTIONS", a.ClientURL()+"/_matrix/client/v3/login"); status != 200 || header.Get("Access-Control-Allow-Methods") == "" {
		t.Errorf("CORS preflight = %d %v", status, header)
	}

	// The federation listener speaks TLS and serves the version and keys.
	status, _, body = get(t, "GET", a.FederationURL()+"/_matrix/federation/v1/version")
	if status != 200 || !strings.Contains(string(body), `"name":"homeserver"`) {
		t.Errorf("federation version = %d %s", status, body)
	}
	status, _, body = get(t, "GET", a.FederationURL()+"/_matrix/key/v2/server")
	var keys struct {
		ServerName string `json:"server_name"`
	}
	if status != 200 || json.Unmarshal(body, &keys) != nil || keys.ServerName != "test.local" {
		t.Errorf("server keys = %d %s", status, body)
	}
	// The client API is not on the federation listener.
	if status, _, _ := get(t, "GET", a.FederationURL()+"/health"); status != 404 {
		t.Errorf("/health on the federation listener = %d, want 404", status)
	}

	clientURL := a.ClientURL()
	stop(t, a)
	if err := a.Stop(context.Background()); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
	if _, err := http.Get(clientURL + "/health"); err == nil {
		t.Error("the client listener still answers after Stop")
	}
	if err := a.Start(context.Background()); err == nil {
		t.Error("a stopped App started again")
	}
}

func TestRestartOnSameConfigAndAddress(t *testing.T) {
	cfg := testConfig(t)
	a := start(t, cfg, nil)
	addr := strings.TrimPrefix(a.ClientURL(), "http://")
	stop(t, a)

	// Like the integration tests' Restart: same data, same address.
	cfg.Client.Listen = addr
	b := start(t, cfg, nil)
	if b.ClientURL() != "http://"+addr {
		t.Errorf("restarted on %s, want %s", b.ClientURL(), addr)
	}
	if status, _, body := get(t, "GET", b.ClientURL()+"/health"); status != 200 {
		t.Errorf("/health after restart = %d %s", status, body)
	}
}

func TestComponentsSubset(t *testing.T) {
	tests := []struct {
		name          string
		components    []string
		client, fed   bool
		federationOff bool
	}{
		{name: "roomserver only", components: []string{Roomserver}},
		{name: "appservices only", components: []string{Appservices}},
		{name: "federation only", components: []string{Federation}, fed: true},
		{name: "federation off", components: []string{Federation}, federationOff: true},
		{name: "client with roomserver", components: []string{Client, Roomserver}, client: true},
		// The roomserver is asked over the bus; nobody answers yet.
		{name: "client only", components: []string{Client}, client: true},
		{name: "media only", components: []string{Media}, client: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tt.federationOff {
				cfg.Federation.Listen = listenOff
			}
			a := start(t, cfg, tt.components)
			if got := a.ClientURL() != ""; got != tt.client {
				t.Errorf("client listener open = %v, want %v", got, tt.client)
			}
			if got := a.FederationURL() != ""; got != tt.fed {
				t.Errorf("federation listener open = %v, want %v", got, tt.fed)
			}
			if tt.client {
				if status, _, body := get(t, "GET", a.ClientURL()+"/health"); status != 200 {
					t.Errorf("/health = %d %s", status, body)
				}
			}
		})
	}
}

func TestUnknownComponents(t *testing.T) {
	cfg := testConfig(t)
	_, err := New(cfg, Options{Components: []string{"client", "sync", "push"}})
	if err == nil || !strings.Contains(err.Error(), `"sync"`) || !strings.Contains(err.Error(), `"push"`) {
		t.Errorf("New = %v, want an error naming sync and push", err)
	}
	if _, err := New(cfg, Options{Components: []string{}}); err == nil {
		t.Error("New accepted an empty component list")
	}
}

func TestParseComponents(t *testing.T) {
	got, err := ParseComponents(" client, media,,")
	if err != nil || strings.Join(got, ",") != "client,media" {
		t.Errorf("ParseComponents = %v, %v", got, err)
	}
	if _, err := ParseComponents("client,bogus"); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("ParseComponents(bogus) = %v, want an error naming it", err)
	}
	if _, err := ParseComponents(" , "); err == nil {
		t.Error("ParseComponents accepted an empty list")
	}
}

func TestStartFailureReleasesEverything(t *testing.T) {
	cfg := testConfig(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	t.Run("port in use", func(t *testing.T) {
		bad := *cfg
		bad.Federation.Listen = busy.Addr().String()
		a, err := New(&bad, Options{Log: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "federation listener") {
			t.Fatalf("Start = %v, want an error about the federation listener", err)
		}
		if err := a.Stop(context.Background()); err != nil {
			t.Errorf("Stop after a failed Start = %v", err)
		}
	})
	t.Run("missing certificate", func(t *testing.T) {
		bad := *cfg
		bad.Federation.TLSCert = filepath.Join(t.TempDir(), "absent.crt")
		a, err := New(&bad, Options{Log: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "absent.crt") {
			t.Fatalf("Start = %v, want an error naming the certificate", err)
		}
	})
	t.Run("bus fails after the database opened", func(t *testing.T) {
		bad := *cfg
		bad.Bus.Prefix = "not a valid prefix!"
		a, err := New(&bad, Options{Log: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "bus") {
			t.Fatalf("Start = %v, want an error about the bus", err)
		}
	})
	// Whatever the failed starts opened (listeners, database, bus) is
	// released: a good start on the same data works.
	a := start(t, cfg, nil)
	if status, _, body := get(t, "GET", a.ClientURL()+"/health"); status != 200 {
		t.Errorf("/health = %d %s", status, body)
	}
}

// TestStopLetsInFlightRequestsFinish sends a request whose body arrives in
// two parts, stops the App between them, and expects an HTTP answer, not
// a cut connection; Stop returns only after it.
func TestStopLetsInFlightRequestsFinish(t *testing.T) {
	a := start(t, testConfig(t), nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.ClientURL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"nobody"},"password":"wrong password"}`
	head := "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+body[:10]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the server reads the head: the request is in flight

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- a.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a request was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		t.Errorf("in-flight request answered %d", resp.StatusCode)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Stop = %v", err)
	}
}

// freePort returns a loopback address with a port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestMediaTokens checks both ways the media component resolves access
// tokens: the client component itself in one process, and the client
// process over the bus when media runs in a process of its own.
func TestMediaTokens(t *testing.T) {
	cfg := testConfig(t)
	cfg.Federation.Listen = listenOff
	cfg.Client.Auth.Argon2Memory, cfg.Client.Auth.Argon2Time = 1024, 1
	cfg.Bus.Listen = freePort(t) // so that the media process can join
	whole := start(t, cfg, nil)

	// An account and a token, through the admin path and the login API.
	ctx := context.Background()
	db, err := storage.Open(ctx, cfg.Database.URL, storage.Options{DataDir: cfg.Global.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hs, err := homeserver.New(homeserver.Deps{Global: &cfg.Global, Config: &cfg.Client, DB: db, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hs.CreateUser(ctx, "alice", "a long enough password", false); err != nil {
		t.Fatal(err)
	}
	body := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"a long enough password"}`
	resp, err := http.Post(whole.ClientURL()+"/_matrix/client/v3/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var login struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || login.AccessToken == "" {
		t.Fatalf("login: %d %v", resp.StatusCode, err)
	}

	// A media process of its own, on the first process's NATS.
	split := *cfg
	split.Bus.URL, split.Bus.Listen = "nats://"+cfg.Bus.Listen, ""
	mediaOnly := start(t, &split, []string{Media})

	for name, base := range map[string]string{"in process": whole.ClientURL(), "over the bus": mediaOnly.ClientURL()} {
		t.Run(name, func(t *testing.T) {
			for token, want := range map[string]int{login.AccessToken: 200, "mat_bogus": 401} {
				req, _ := http.NewRequest("GET", base+"/_matrix/client/v1/media/config", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("media config with a %d-token: %d %s", want, resp.StatusCode, raw)
				}
			}
		})
	}

	// Uploaded to one process, downloaded from the other, with the token
	// the client component issued: one database, one media store.
	media := func(method, url string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+login.AccessToken)
		req.Header.Set("Content-Type", "application/pdf")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	for name, urls := range map[string][2]string{
		"upload in process, download over the bus": {whole.ClientURL(), mediaOnly.ClientURL()},
		"upload over the bus, download in process": {mediaOnly.ClientURL(), whole.ClientURL()},
	} {
		t.Run(name, func(t *testing.T) {
			data := []byte("minutes of the meeting, " + name)
			status, raw := media("POST", urls[0]+"/_matrix/media/v3/upload", data)
			var up struct {
				ContentURI string `json:"content_uri"`
			}
			if err := json.Unmarshal(raw, &up); status != 200 || err != nil || !strings.HasPrefix(up.ContentURI, "mxc://test.local/") {
				t.Fatalf("upload: %d %s", status, raw)
			}
			status, got := media("GET", urls[1]+"/_matrix/client/v1/media/download/"+strings.TrimPrefix(up.ContentURI, "mxc://"), nil)
			if status != 200 || !bytes.Equal(got, data) {
				t.Fatalf("download: %d %q", status, got)
			}
		})
	}
}
