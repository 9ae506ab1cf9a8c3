//go:build goolm

package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	LearntDevice      string   `json:"learnt_device"`
	Sent2             string   `json:"sent2"`
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
// the SDK decrypts. Then the Go user logs in a second device: the SDK
// learns it through device_lists.changed and its next message is
// decrypted by both Go devices.
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
			"ROOM_ID="+room.String(), "JS_BODY="+jsBody, "GO_BODY="+goBody, "GO_USER="+alice.c.UserID.String(),
			"DEADLINE_MS=60000")
		cmd.Stderr = testLogLines{t}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start node: %v", err)
		}
		// lines carries exchange.mjs's stdout; it is closed at its end.
		lines := make(chan string, 16)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var res *jssdkResult
		// step waits for the script's next STEP line and returns it; a
		// RESULT line before it (the script gave up) fails the test.
		step := func(want string) string {
			t.Helper()
			for line := range lines {
				if raw, ok := strings.CutPrefix(line, "RESULT "); ok {
					res = parseJSSDKResult(t, raw)
					t.Fatalf("exchange.mjs ended before %s: %+v", want, *res)
				}
				if rest, ok := strings.CutPrefix(line, "STEP "+want); ok {
					return strings.TrimSpace(rest)
				}
			}
			t.Fatalf("exchange.mjs ended before %s", want)
			return ""
		}

		// 1. The SDK's message to the Go client, the Go client's answer.
		alice.waitJoined(room, alice.c.UserID, js.UserID)
		alice.waitBody(jsBody, 60*time.Second)
		alice.send(room, goBody)
		step("answered")

		// 2. alice logs in a new device; the SDK learns it from
		// device_lists.changed and encrypts its next message for it too.
		alice2 := startE2EEDevice(t, "alice2", s.Login(alice.c.UserID))
		alice2.waitJoined(room, alice.c.UserID, js.UserID)
		const jsBody2 = "Deuxième message depuis matrix-js-sdk"
		if _, err := io.WriteString(stdin, "send2 "+alice2.c.DeviceID.String()+" "+jsBody2+"\n"); err != nil {
			t.Fatal(err)
		}
		sent2 := id.EventID(step("sent2"))
		alice2.waitDecrypted(sent2, jsBody2)
		alice.waitDecrypted(sent2, jsBody2)
		if _, err := io.WriteString(stdin, "done\n"); err != nil {
			t.Fatal(err)
		}
		for line := range lines {
			if raw, ok := strings.CutPrefix(line, "RESULT "); ok {
				res = parseJSSDKResult(t, raw)
			}
		}
		runErr := cmd.Wait()
		if res == nil {
			t.Fatalf("exchange.mjs printed no RESULT line (%v)", runErr)
		}
		if runErr != nil || len(res.Errors) > 0 {
			t.Fatalf("exchange.mjs: %v; result %+v", runErr, *res)
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
		for _, needle := range []string{jsBody, goBody, jsBody2, "Bonjour depuis"} {
			if where := findInDatabase(t, db, needle); where != "" {
				t.Errorf("%q found in table %s", needle, where)
			}
		}
		if where := findInDatabase(t, db, res.Sent); where == "" {
			t.Fatal("the database scan does not find the SDK's event id")
		}
	})
}

// parseJSSDKResult decodes the JSON of exchange.mjs's RESULT line.
func parseJSSDKResult(t *testing.T, raw string) *jssdkResult {
	t.Helper()
	var res jssdkResult
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("RESULT line %q: %v", raw, err)
	}
	return &res
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
