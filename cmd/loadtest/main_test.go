package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/report"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/testserver"
)

// runCLI runs the command with args and returns its exit status, stdout
// and stderr.
func runCLI(t *testing.T, signals chan os.Signal, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, progressInterval: 200 * time.Millisecond}
	if signals != nil {
		c.signals = signals
	}
	code := c.run(args)
	return code, out.String(), errOut.String()
}

func readReport(t *testing.T, dir string) report.Report {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	return r
}

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		url string
		own bool
		ok  bool
	}{
		{"http://127.0.0.1:8008", false, true},
		{"http://127.8.9.10", false, true},
		{"https://localhost:8448", false, true},
		{"http://LOCALHOST", false, true},
		{"http://matrix.localhost", false, true},
		{"http://[::1]:8008", false, true},
		{"http://[::ffff:127.0.0.1]:8008", false, true},
		{"http://10.0.0.1:8008", false, false},
		{"http://192.168.1.2", false, false},
		{"http://[2001:db8::1]", false, false},
		{"https://matrix.example.org", false, false},
		{"http://localhost.example.org", false, false},
		{"http://127.0.0.1.nip.io", false, false},
		{"http://0.0.0.0:8008", false, false},
		{"https://matrix.example.org", true, true},
		{"http://10.0.0.1:8008", true, true},
		{"ftp://127.0.0.1", false, false},
		{"127.0.0.1:8008", false, false},
		{"http://", true, false},
	}
	for _, tt := range tests {
		_, err := CheckTarget(tt.url, tt.own)
		if (err == nil) != tt.ok {
			t.Errorf("CheckTarget(%q, own=%v) = %v, want ok=%v", tt.url, tt.own, err, tt.ok)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no scenario", []string{"--hs", "http://127.0.0.1:1"}, "no scenario given"},
		{"unknown scenario", []string{"--hs", "http://127.0.0.1:1", "stampede"}, `unknown scenario "stampede"`},
		{"no hs", []string{"join"}, "--hs is required"},
		{"remote", []string{"--hs", "https://matrix.example.org", "join"}, "--i-own-this-server"},
		{"both secrets", []string{"--hs", "http://127.0.0.1:1", "--shared-secret", "a", "--registration-token", "b", "join"}, "not both"},
		{"bad scenario flag", []string{"--hs", "http://127.0.0.1:1", "join", "--users", "0"}, "must be positive"},
		{"stray argument", []string{"--hs", "http://127.0.0.1:1", "join", "extra"}, "unexpected argument"},
		{"chat check", []string{"--hs", "http://127.0.0.1:1", "chat", "--users", "3", "--rooms", "2"}, "twice --rooms"},
		{"media size", []string{"--hs", "http://127.0.0.1:1", "media", "--sizes", "1XB"}, "bad size"},
		{"help", []string{"-h"}, "Scenarios"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, exitUsage, tt.want)
			}
		})
	}
}

func TestNoServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	code, _, stderr := runCLI(t, nil, "--hs", url, "--out", t.TempDir(), "join")
	if code != exitFailed || !strings.Contains(stderr, "no Matrix homeserver answers") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

// fakeServer is a homeserver that only knows versions, shared-secret
// registration and login, and answers 404 M_UNRECOGNIZED to the rest,
// as a server still being built does.
func fakeServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "GET /_matrix/client/versions":
			w.Write([]byte(`{"versions":["v1.11"]}`))
		case "GET /_synapse/admin/v1/register":
			w.Write([]byte(`{"nonce":"n"}`))
		case "POST /_synapse/admin/v1/register":
			w.Write([]byte(`{"user_id":"@u:fake"}`))
		case "POST /_matrix/client/v3/login":
			var req struct {
				Identifier struct{ User string } `json:"identifier"`
			}
			_ = json.NewDecoder(r.Body).Decode(&req)
			json.NewEncoder(w).Encode(map[string]string{
				"user_id": "@" + req.Identifier.User + ":fake", "access_token": "t-" + req.Identifier.User, "device_id": "D",
			})
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestNotImplementedIsSkipped(t *testing.T) {
	srv := fakeServer(t)
	for scenario, what := range map[string]string{
		"media":        "does not implement media upload (POST /_matrix/media/v3/upload answered 404 M_UNRECOGNIZED)",
		"join":         "does not implement room creation (POST /_matrix/client/v3/createRoom answered 404 M_UNRECOGNIZED)",
		"e2ee":         "does not implement sync (GET /_matrix/client/v3/sync answered 404 M_UNRECOGNIZED)",
		"chat":         "does not implement sync",
		"initial-sync": "does not implement sync",
	} {
		t.Run(scenario, func(t *testing.T) {
			out := t.TempDir()
			args := []string{"--hs", srv.URL, "--shared-secret", "s", "--out", out, scenario}
			if scenario == "e2ee" {
				args = append(args, "--devices", "3", "--claims", "1", "--fanout", "1")
			}
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != exitSkipped || !strings.Contains(stderr, "skipped: ") || !strings.Contains(stderr, what) {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stdout, scenario+" against "+srv.URL+": skipped") {
				t.Errorf("table:\n%s", stdout)
			}
			r := readReport(t, out)
			if r.Status != report.StatusSkipped || !strings.Contains(r.Error, what) || r.Registration != "shared-secret" {
				t.Errorf("report: status %q, error %q", r.Status, r.Error)
			}
			if m := r.Metric("setup.login"); m == nil || m.Count == 0 {
				t.Error("the setup figures are not in the report")
			}
		})
	}
}

// joinArgs runs a short join against srv.
func joinArgs(srv *testserver.Server, out string, extra ...string) []string {
	return append([]string{"--hs", srv.URL, "--shared-secret", testserver.SharedSecret, "--out", out,
		"--pid", strconv.Itoa(os.Getpid()), "join", "--users", "4", "--warmup", "200ms"}, extra...)
}

func TestJoinEndToEnd(t *testing.T) {
	srv := testserver.Start(t)
	out := filepath.Join(t.TempDir(), "results")
	code, stdout, stderr := runCLI(t, nil, joinArgs(srv, out, "--duration", "1s")...)
	if code == exitSkipped {
		t.Skipf("skipped until the server implements it: %s", stderr)
	}
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// The window closes on a timer, read a little late on a busy machine.
	if !regexp.MustCompile(`join against ` + regexp.QuoteMeta(srv.URL) + `: ok, measured over 1\.[0-9]s`).MatchString(stdout) {
		t.Errorf("no one-second window in:\n%s", stdout)
	}
	for _, want := range []string{"join.wave", "leave", "rejoin", "setup.register", "server process"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	// stderr is not a terminal here: plain progress lines.
	if !strings.Contains(stderr, "join: measure") || strings.Contains(stderr, "\r") {
		t.Errorf("progress lines:\n%q", stderr)
	}
	r := readReport(t, out)
	if r.Status != report.StatusOK || r.Window == nil || r.Window.Seconds < 1 || len(r.Server.Versions) == 0 {
		t.Errorf("report: %+v", r)
	}
	if m := r.Metric("join.wave"); m == nil || m.Count != 4 || m.P50MS <= 0 || len(m.Histogram) == 0 {
		t.Errorf("join.wave: %+v", m)
	}
	if r.Process == nil || r.Process.PID != os.Getpid() || r.Process.Run.PeakRSSBytes <= 0 || len(r.Process.Samples) < 2 {
		t.Errorf("process: %+v", r.Process)
	}
	for _, f := range []string{"index.html", report.HistogramFile("join.wave"), report.HistogramFile("leave")} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestStopReports(t *testing.T) {
	srv := testserver.Start(t)
	out := t.TempDir()
	sigs := make(chan os.Signal, 2)
	// The stop must come after the set-up and the join wave, which take
	// a few seconds on a machine busy with the race detector.
	time.AfterFunc(5*time.Second, func() { sigs <- syscall.SIGINT })
	start := time.Now()
	code, stdout, stderr := runCLI(t, sigs, joinArgs(srv, out, "--duration", "10m")...)
	if code == exitSkipped {
		t.Skipf("skipped until the server implements it: %s", stderr)
	}
	if code != exitStopped || time.Since(start) > time.Minute {
		t.Fatalf("exit %d after %v\nstderr:\n%s", code, time.Since(start), stderr)
	}
	if !strings.Contains(stderr, "stopping:") || !strings.Contains(stdout, ": stopped") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	r := readReport(t, out)
	if r.Status != report.StatusStopped || r.Metric("join.wave") == nil || r.Metric("join.wave").Count != 4 {
		t.Errorf("report after a stop: status %q", r.Status)
	}
}

// TestChatOnFake runs chat through the command against the in-memory
// fake, which serves /sync: the delivery figures, their histogram and a
// window ended by the message count.
func TestChatOnFake(t *testing.T) {
	fake := testserver.StartFake(t)
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, nil, "--hs", fake.URL, "--shared-secret", "s", "--out", out,
		"chat", "--users", "4", "--rooms", "2", "--senders", "2", "--rate", "50", "--messages", "20",
		"--warmup", "200ms", "--duration", "1m", "--drain", "5s", "--poll-timeout", "5s")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "(ended by count)") {
		t.Errorf("table:\n%s", stdout)
	}
	r := readReport(t, out)
	d, sent := r.Metric("delivery"), r.Counter("messages.sent")
	if d == nil || sent == nil || sent.Value < 20 || int64(d.Count) != sent.Value || r.Counter("messages.missing").Value != 0 {
		t.Fatalf("delivery %+v, sent %+v", d, sent)
	}
	if r.Window.EndedBy != "count" || r.Window.Seconds > 30 {
		t.Errorf("window %+v", r.Window)
	}
	if _, err := os.Stat(filepath.Join(out, report.HistogramFile("delivery"))); err != nil {
		t.Error(err)
	}
}
