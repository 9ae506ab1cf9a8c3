//go:build goolm

package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// jssdkDir holds the Node side of TestJSSDK: package.json and its
// lockfile (npm ci installs them; CI does), and exchange.mjs.
const jssdkDir = "jssdk"

// jssdkResult is what exchange.mjs prints on its RESULT line.
type jssdkResult struct {
	Warnings          []string `json:"warnings"`
	LoggedIn          bool     `json:"logged_in"`
	Crypto            bool     `json:"crypto"`
	Joined            bool     `json:"joined"`
	EncryptedRoom     bool     `json:"encrypted_room"`
	Sent              string   `json:"sent"`
	Received          string   `json:"received"`
	ReceivedEncrypted bool     `json:"received_encrypted"`
	Errors            []string `json:"errors"`
}

// nodeForJSSDK returns the node binary to run exchange.mjs with, or skips
// the test saying what is missing.
func nodeForJSSDK(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("matrix-js-sdk test skipped: node is not installed (Node 20 or later is needed)")
	}
	out, err := exec.Command(node, "-p", "process.versions.node.split('.')[0]").Output()
	if major, _ := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || major < 20 {
		t.Skipf("matrix-js-sdk test skipped: node %s is older than 20 (err %v)", strings.TrimSpace(string(out)), err)
	}
	if _, err := os.Stat(filepath.Join(jssdkDir, "node_modules", "matrix-js-sdk", "package.json")); err != nil {
		t.Skip("matrix-js-sdk test skipped: its packages are not installed; run `npm ci` in tests/jssdk")
	}
	return node
}

// TestJSSDK: a second real client. matrix-js-sdk (Element Web's SDK)
// with its Rust crypto logs in under Node, joins the encrypted room a
// mautrix-go client (goolm OlmMachine) invites it to, and sends a message
// that the Go client decrypts; the Go client answers with a message that
// the SDK decrypts.
func TestJSSDK(t *testing.T) {
	node := nodeForJSSDK(t)
	engines(t, func(t *testing.T, s *Server) {
		alice := startE2EEDevice(t, "alice", s.Register("alice"))
		js, err := s.RegisterErr("jsuser")
		if err != nil {
			t.Fatal(err)
		}
		room := createRoom(t, s, alice.c, map[string]any{"preset": "private_chat", "invite": []string{js.UserID.String()}})
		const jsBody, goBody = "Bonjour depuis matrix-js-sdk", "Bonjour depuis mautrix-go"

		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "exchange.mjs")
		cmd.Dir = jssdkDir
		cmd.Env = append(os.Environ(), "HS_URL="+s.URL, "JS_USER="+js.UserID.String(), "JS_PASSWORD="+testPassword,
			"ROOM_ID="+room.String(), "JS_BODY="+jsBody, "GO_BODY="+goBody, "DEADLINE_MS=60000")
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stderr = testLogLines{t}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start node: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()

		alice.waitJoined(room, alice.c.UserID, js.UserID)
		alice.waitBody(jsBody, 60*time.Second)
		alice.send(room, goBody)

		runErr := <-done
		res := parseJSSDKResult(t, stdout.String())
		if runErr != nil || len(res.Errors) > 0 {
			t.Fatalf("exchange.mjs: %v; result %+v", runErr, res)
		}
		for _, w := range res.Warnings {
			t.Logf("matrix-js-sdk: %s", w)
		}
		if !res.Crypto || !res.EncryptedRoom {
			t.Fatalf("the SDK's crypto did not run in an encrypted room: %+v", res)
		}
		if res.Received != goBody || !res.ReceivedEncrypted {
			t.Fatalf("the SDK received %q (encrypted %v), want %q encrypted", res.Received, res.ReceivedEncrypted, goBody)
		}
		if got := alice.encryptedEvent(id.EventID(res.Sent)); got.Content.AsEncrypted().Algorithm != id.AlgorithmMegolmV1 {
			t.Fatalf("the SDK's message is not Megolm-encrypted: %+v", got.Content.Raw)
		}
		// Neither client left plaintext on the server.
		db := storagetest.Open(t, s.Cfg.Database.URL)
		for _, needle := range []string{jsBody, goBody, "Bonjour depuis"} {
			if where := findInDatabase(t, db, needle); where != "" {
				t.Errorf("%q found in table %s", needle, where)
			}
		}
		if where := findInDatabase(t, db, res.Sent); where == "" {
			t.Fatal("the database scan does not find the SDK's event id")
		}
	})
}

// parseJSSDKResult finds the RESULT line of exchange.mjs's output.
func parseJSSDKResult(t *testing.T, out string) jssdkResult {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if raw, ok := strings.CutPrefix(line, "RESULT "); ok {
			var res jssdkResult
			if err := json.Unmarshal([]byte(raw), &res); err != nil {
				t.Fatalf("RESULT line %q: %v", raw, err)
			}
			return res
		}
	}
	t.Fatalf("exchange.mjs printed no RESULT line; stdout: %q", out)
	return jssdkResult{}
}

// testLogLines sends a child process's output to the test log, a line at
// a time.
type testLogLines struct{ t *testing.T }

func (w testLogLines) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		w.t.Log(sc.Text())
	}
	return len(p), nil
}
