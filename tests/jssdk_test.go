//go:build goolm

package tests

import (
	"encoding/json"
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

// nodeForJSSDK returns the node binary to run the matrix-js-sdk scripts
// with, or skips the test saying what is missing.
func nodeForJSSDK(t *testing.T) string {
	t.Helper()
	return requireNode(t, "matrix-js-sdk", jssdkDir, "matrix-js-sdk")
}

// TestJSSDK: a second real client. matrix-js-sdk (Element Web's SDK)
// with its Rust crypto logs in under Node, joins the encrypted room a
// mautrix-go client (goolm OlmMachine) invites it to, and sends a message
// that the Go client decrypts; the Go client answers with a message that
// the SDK decrypts. Then the Go user logs in a second device: the SDK
// learns it through device_lists.changed and its next message is
// decrypted by both Go devices.
func TestJSSDK(t *testing.T) {
	t.Parallel()
	node := nodeForJSSDK(t)
	engines(t, func(t *testing.T, s *Server) {
		alice := startE2EEDevice(t, "alice", s.Register("alice"))
		js, err := s.RegisterErr("jsuser")
		if err != nil {
			t.Fatal(err)
		}
		room := createRoom(t, s, alice.c, map[string]any{"preset": "private_chat", "invite": []string{js.UserID.String()}})
		const jsBody, goBody = "Bonjour depuis matrix-js-sdk", "Bonjour depuis mautrix-go"

		prog := startNode(t, node, jssdkDir, "RESULT", []string{"HS_URL=" + s.URL, "JS_USER=" + js.UserID.String(),
			"JS_PASSWORD=" + testPassword, "ROOM_ID=" + room.String(), "JS_BODY=" + jsBody, "GO_BODY=" + goBody,
			"GO_USER=" + alice.c.UserID.String(), "DEADLINE_MS=60000"}, "exchange.mjs")
		step := func(want string) string { t.Helper(); return prog.next("STEP " + want) }

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
		prog.send("send2 " + alice2.c.DeviceID.String() + " " + jsBody2)
		sent2 := id.EventID(step("sent2"))
		alice2.waitDecrypted(sent2, jsBody2)
		alice.waitDecrypted(sent2, jsBody2)
		prog.send("done")
		raw, runErr := prog.wait()
		if raw == "" {
			t.Fatalf("exchange.mjs printed no RESULT line (%v)", runErr)
		}
		res := parseJSSDKResult(t, raw)
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
