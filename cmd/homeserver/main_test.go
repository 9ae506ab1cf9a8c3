package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/cmd/homeserver/app"
	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/version"
)

// result is what a command wrote and its exit status.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line args with stdin as standard input.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut}
	code := c.main(args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// initTestDir runs init into a fresh directory with free loopback ports
// and returns the configuration's path.
func initTestDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	r := runCLI(t, "", "init", "--server-name", "test.local", "--dir", dir,
		"--client-listen", "127.0.0.1:0", "--federation-listen", "127.0.0.1:0")
	if r.code != 0 {
		t.Fatalf("init: exit %d: %s", r.code, r.stderr)
	}
	return filepath.Join(dir, configFile)
}

// loadTestConfig loads path with cheap password hashing.
func loadTestConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client.Auth.Argon2Memory, cfg.Client.Auth.Argon2Time = 1024, 1
	return cfg
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// tlsClient trusts any certificate: init's is self-signed. Tests only.
func tlsClient() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
}

func getBody(t *testing.T, c *http.Client, url string) []byte {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body
}

// TestInitThenStart runs init, starts the whole server on the written
// configuration, and checks the health endpoint and the federation key
// response (over TLS, signature verified with the configured key).
func TestInitThenStart(t *testing.T) {
	path := initTestDir(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode = %v, want 0600", fi.Mode().Perm())
	}
	for _, f := range []string{selfSignedCert, selfSignedKey} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), f)); err != nil {
			t.Errorf("init did not write %s: %v", f, err)
		}
	}

	cfg := loadTestConfig(t, path)
	a, err := app.New(cfg, app.Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() {
		if err := a.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()

	client := tlsClient()
	if body := getBody(t, client, a.ClientURL()+"/health"); strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("/health = %s", body)
	}
	body := getBody(t, client, a.FederationURL()+"/_matrix/key/v2/server")
	key, err := config.ParseSigningKey(cfg.Global.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Private.Public().(ed25519.PublicKey)
	if err := gomatrixserverlib.VerifyJSON("test.local", gomatrixserverlib.KeyID(key.ID), pub, body); err != nil {
		t.Errorf("key response does not verify: %v\n%s", err, body)
	}
	var keys gomatrixserverlib.ServerKeys
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatal(err)
	}
	if checks, _ := gomatrixserverlib.CheckKeys("test.local", time.Now(), keys); !checks.AllChecksOK {
		t.Errorf("CheckKeys: %+v", checks)
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	path := initTestDir(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "init", "--server-name", "other.example", "--dir", filepath.Dir(path))
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("second init: exit %d, stderr %q; want 1 and \"already exists\"", r.code, r.stderr)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("second init changed the configuration")
	}
}

func TestInitRefusesToOverwriteKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, selfSignedKey), []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "init", "--server-name", "a.example", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, selfSignedKey) {
		t.Errorf("init over a key: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		t.Error("init wrote a configuration although it failed")
	}
}

func TestInitWithGivenCertificate(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "my.crt"), filepath.Join(dir, "my.key")
	data := filepath.Join(dir, "data")
	r := runCLI(t, "", "init", "--server-name", "a.example", "--dir", data, "--tls-cert", cert, "--tls-key", key,
		"--database", "postgres://hs@db/hs", "--nats", "nats://nats:4222")
	if r.code != 0 {
		t.Fatalf("init: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(data, selfSignedCert)); err == nil {
		t.Error("init wrote a self-signed pair although one was given")
	}
	cfg := loadTestConfig(t, filepath.Join(data, configFile))
	if cfg.Federation.TLSCert != cert || cfg.Federation.TLSKey != key || cfg.Database.URL != "postgres://hs@db/hs" || cfg.Bus.URL != "nats://nats:4222" {
		t.Errorf("config = %+v %+v %+v", cfg.Federation, cfg.Database, cfg.Bus)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"help"}, 2, "Usage:"},
		{"unknown command", []string{"serve"}, 2, `unknown command "serve"`},
		{"init without flags", []string{"init"}, 2, "missing --server-name and --dir"},
		{"init with a bad flag", []string{"init", "--sever-name", "x"}, 2, "sever-name"},
		{"init with half a pair", []string{"init", "--server-name", "x", "--dir", "d", "--tls-cert", "c"}, 2, "--tls-key"},
		{"run without config", []string{"run"}, 2, "missing --config"},
		{"run with unknown components", []string{"run", "--config", "x.yaml", "--components", "client,sync,push"}, 2, `"push", "sync"`},
		{"admin without command", []string{"admin", "--config", "x.yaml"}, 2, "missing command"},
		{"admin with unknown command", []string{"admin", "--config", "x.yaml", "promote"}, 2, `unknown command "promote"`},
		{"create-user without name", []string{"admin", "--config", "x.yaml", "create-user"}, 2, "want one user name"},
		{"create-user without config", []string{"admin", "create-user", "alice"}, 2, "missing --config"},
		{"token with bad characters", []string{"admin", "--config", "x.yaml", "create-registration-token", "a b"}, 2, "1 to 64 characters"},
		{"token with negative uses", []string{"admin", "--config", "x.yaml", "create-registration-token", "abc", "--uses", "-1"}, 2, "--uses"},
		{"version with argument", []string{"version", "now"}, 2, "unexpected argument"},
		{"missing config file", []string{"run", "--config", "/nonexistent/homeserver.yaml"}, 1, "read config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, "", "version")
	if r.code != 0 || r.stdout != "homeserver "+version.String()+"\n" {
		t.Errorf("version: exit %d, %q", r.code, r.stdout)
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args       []string
		positional []string
		admin      bool
		file       string
	}{
		{[]string{"alice"}, []string{"alice"}, false, ""},
		{[]string{"alice", "--admin"}, []string{"alice"}, true, ""},
		{[]string{"--admin", "alice", "--password-file", "f"}, []string{"alice"}, true, "f"},
		{[]string{"alice", "--", "--admin"}, []string{"alice", "--admin"}, false, ""},
	}
	for _, tt := range tests {
		c := &cli{stderr: io.Discard}
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		admin := fs.Bool("admin", false, "")
		file := fs.String("password-file", "", "")
		got, err := c.parse(fs, tt.args)
		if err != nil || strings.Join(got, " ") != strings.Join(tt.positional, " ") || *admin != tt.admin || *file != tt.file {
			t.Errorf("parse(%q) = %q, %v, admin %v, file %q", tt.args, got, err, *admin, *file)
		}
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, file, stdin, want string
		wantErr                 bool
	}{
		{name: "file with newline", file: write("a", "secret words\n"), want: "secret words"},
		{name: "file with CRLF", file: write("b", "secret words\r\n"), want: "secret words"},
		{name: "file keeps inner spaces", file: write("c", " secret \n\n"), want: " secret \n"},
		{name: "empty file", file: write("d", "\n"), wantErr: true},
		{name: "missing file", file: filepath.Join(dir, "absent"), wantErr: true},
		{name: "stdin", stdin: "from a pipe\n", want: "from a pipe"},
		{name: "empty stdin", stdin: "", wantErr: true},
		{name: "huge stdin", stdin: strings.Repeat("x", maxPasswordBytes+1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &cli{stdin: strings.NewReader(tt.stdin), stderr: io.Discard}
			got, err := c.readPassword(tt.file)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("readPassword = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestToLocalpart(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "alice"},
		{"@alice:test.local", "alice"},
		{"@alice:other.example", ""},
		{"@alice", ""},
	}
	for _, tt := range tests {
		got, err := toLocalpart(tt.in, "test.local")
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("toLocalpart(%q) = %q, %v", tt.in, got, err)
		}
	}
}

// TestAdminWhileRunning creates, resets and deactivates an account with
// the admin CLI while the server runs on the same database, and checks
// each step through the client API.
func TestAdminWhileRunning(t *testing.T) {
	path := initTestDir(t)
	cfg := loadTestConfig(t, path)
	a, err := app.New(cfg, app.Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(ctx)

	login := func(user, password string) int {
		t.Helper()
		body, _ := json.Marshal(map[string]any{
			"type":       "m.login.password",
			"identifier": map[string]string{"type": "m.id.user", "user": user},
			"password":   password,
		})
		resp, err := http.Post(a.ClientURL()+"/_matrix/client/v3/login", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("first long password\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "", "admin", "--config", path, "create-user", "alice", "--admin", "--password-file", pwFile)
	if r.code != 0 || !strings.Contains(r.stdout, "@alice:test.local") {
		t.Fatalf("create-user: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if got := login("alice", "first long password"); got != 200 {
		t.Errorf("login after create-user = %d, want 200", got)
	}
	r = runCLI(t, "", "admin", "--config", path, "create-user", "alice", "--password-file", pwFile)
	if r.code != 1 {
		t.Errorf("create-user of an existing user: exit %d, %q", r.code, r.stderr)
	}

	// The password from standard input, the user as a full id.
	r = runCLI(t, "second long password\n", "admin", "--config", path, "reset-password", "@alice:test.local")
	if r.code != 0 {
		t.Fatalf("reset-password: exit %d, %q", r.code, r.stderr)
	}
	if got := login("alice", "first long password"); got != 403 {
		t.Errorf("login with the old password = %d, want 403", got)
	}
	if got := login("alice", "second long password"); got != 200 {
		t.Errorf("login with the new password = %d, want 200", got)
	}

	r = runCLI(t, "", "admin", "--config", path, "deactivate", "alice")
	if r.code != 0 {
		t.Fatalf("deactivate: exit %d, %q", r.code, r.stderr)
	}
	if got := login("alice", "second long password"); got == 200 {
		t.Error("a deactivated user logged in")
	}
	r = runCLI(t, "", "admin", "--config", path, "deactivate", "bob")
	if r.code != 1 || !strings.Contains(r.stderr, "bob") {
		t.Errorf("deactivate of an unknown user: exit %d, %q", r.code, r.stderr)
	}
}

// TestAdminRegistrationToken creates a token with the admin CLI and
// checks it through the client API's validity endpoint.
func TestAdminRegistrationToken(t *testing.T) {
	path := initTestDir(t)
	cfg := loadTestConfig(t, path)
	cfg.Client.Registration.Enabled = true
	a, err := app.New(cfg, app.Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(ctx)

	r := runCLI(t, "", "admin", "--config", path, "create-registration-token", "welcome-2026", "--uses", "3")
	if r.code != 0 || !strings.Contains(r.stdout, "3 uses") {
		t.Fatalf("create-registration-token: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	for token, want := range map[string]bool{"welcome-2026": true, "other": false} {
		body := getBody(t, http.DefaultClient, a.ClientURL()+"/_matrix/client/v1/register/m.login.registration_token/validity?token="+token)
		var v struct {
			Valid bool `json:"valid"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.Valid != want {
			t.Errorf("validity of %s = %s, want valid %v", token, body, want)
		}
	}
}

// TestServeUntilCancelled runs the server as `run` does, and stops it by
// cancelling its context as a signal would.
func TestServeUntilCancelled(t *testing.T) {
	path := initTestDir(t)
	var out bytes.Buffer
	c := &cli{stdout: &out, stderr: io.Discard}
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.serve(ctx, path, []string{app.Client, app.Roomserver}, func(a *app.App) { urls <- a.ClientURL() })
	}()
	select {
	case url := <-urls:
		getBody(t, http.DefaultClient, url+"/health")
	case err := <-done:
		t.Fatalf("serve returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve = %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("server did not stop")
	}
}

func TestNextSteps(t *testing.T) {
	var out bytes.Buffer
	c := &cli{stdout: &out}
	c.printNextSteps("data/homeserver.yaml", "http://127.0.0.1:8008")
	for _, want := range []string{
		"homeserver admin --config data/homeserver.yaml create-user alice --admin",
		"http://127.0.0.1:8008",
		"Element",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("next steps do not say %q:\n%s", want, out.String())
		}
	}
}
