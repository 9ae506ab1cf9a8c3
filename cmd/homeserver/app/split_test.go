package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// envTestNATS names an external NATS (with JetStream) that the split
// tests use instead of the first process's embedded one, e.g.
// nats://127.0.0.1:4222.
const envTestNATS = "HOMESERVER_TEST_NATS"

// splitSecret is the shared registration secret of the split tests.
const splitSecret = "split-test-secret"

// startSplit starts two processes on one database (dbURL) and one NATS:
// the roomserver (with federation and appservices), and the client API
// (with media), which reaches the roomserver only over the bus. It
// returns the client process's base URL.
func startSplit(t *testing.T, dbURL string) string {
	t.Helper()
	cfg := testConfig(t)
	cfg.Database.URL = dbURL
	cfg.Client.Registration.SharedSecret = splitSecret
	cfg.Client.Auth.Argon2Memory, cfg.Client.Auth.Argon2Time = 1024, 1
	if natsURL := os.Getenv(envTestNATS); natsURL != "" {
		cfg.Bus.URL, cfg.Bus.Prefix = natsURL, randomBusPrefix(t)
		deleteStreamsAtCleanup(t, natsURL, cfg.Bus.Prefix)
	} else {
		cfg.Bus.Listen = freePort(t) // so that the client process can join
	}
	start(t, cfg, []string{Roomserver, Federation, Appservices})

	clientCfg := *cfg
	if clientCfg.Bus.URL == "" {
		clientCfg.Bus.URL, clientCfg.Bus.Listen = "nats://"+cfg.Bus.Listen, ""
	}
	clientCfg.Global.DataDir = t.TempDir() // its own media store
	// Stopped before the roomserver process (cleanups run last first).
	return start(t, &clientCfg, []string{Client, Media}).ClientURL()
}

// randomBusPrefix keeps tests apart on a shared NATS.
func randomBusPrefix(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// deleteStreamsAtCleanup deletes the streams of prefix from the NATS at
// natsURL once the test's processes have stopped.
func deleteStreamsAtCleanup(t *testing.T, natsURL, prefix string) {
	t.Cleanup(func() {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			t.Errorf("connect to %s: %v", natsURL, err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Errorf("jetstream: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		names := js.StreamNames(ctx)
		for name := range names.Name() {
			if strings.HasPrefix(name, prefix+"_") {
				if err := js.DeleteStream(ctx, name); err != nil {
					t.Errorf("delete stream %s: %v", name, err)
				}
			}
		}
	})
}

// matrixClient talks to one client API as one user.
type matrixClient struct {
	t     *testing.T
	base  string
	token string
}

// reply is an HTTP answer with its JSON body.
type reply struct {
	status int
	body   map[string]any
	raw    string
}

// errcode is the Matrix error code of the answer, if any.
func (r reply) errcode() string { s, _ := r.body["errcode"].(string); return s }

// str returns the string at key of the body.
func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }

// do sends body as JSON (none when nil) to path and returns the answer.
func (c matrixClient) do(method, path string, body any) reply {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := reply{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// ok is do that fails the test unless the answer is 200.
func (c matrixClient) ok(method, path string, body any) reply {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.status != http.StatusOK {
		c.t.Fatalf("%s %s: %d %s", method, path, r.status, r.raw)
	}
	return r
}

// register creates localpart with the shared secret and returns its
// client.
func register(t *testing.T, base, localpart string) matrixClient {
	t.Helper()
	mc, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&synapseadmin.Client{Client: mc}).SharedSecretRegister(context.Background(), splitSecret,
		synapseadmin.ReqSharedSecretRegister{Username: localpart, Password: "a long enough password"})
	if err != nil {
		t.Fatalf("register %s: %v", localpart, err)
	}
	return matrixClient{t: t, base: base, token: resp.AccessToken}
}

// TestClientWithRemoteRoomserver runs the client API in a process without
// the roomserver: every room call crosses the bus, and the roomserver's
// errors come back as themselves (the client API answers them as it does
// in one process).
func TestClientWithRemoteRoomserver(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, dbURL string) {
		base := startSplit(t, dbURL)
		alice, bob := register(t, base, "alice"), register(t, base, "bob")
		const v3 = "/_matrix/client/v3"
		rooms := v3 + "/rooms/"

		// A room, created whole through the bus.
		created := alice.ok("POST", v3+"/createRoom", map[string]any{"name": "Split", "topic": "over NATS", "preset": "private_chat"})
		roomID := created.str("room_id")
		room := rooms + url.PathEscape(roomID)

		// Messages, read back in order.
		var sent []string
		for i, body := range []string{"one", "two", "three"} {
			r := alice.ok("PUT", fmt.Sprintf("%s/send/m.room.message/txn%d", room, i), map[string]any{"msgtype": "m.text", "body": body})
			sent = append(sent, r.str("event_id"))
		}
		msgs := alice.ok("GET", room+"/messages?dir=b&limit=10", nil)
		var bodies []string
		for _, e := range msgs.body["chunk"].([]any) {
			ev := e.(map[string]any)
			if ev["type"] == "m.room.message" {
				bodies = append(bodies, ev["content"].(map[string]any)["body"].(string))
			}
		}
		if strings.Join(bodies, ",") != "three,two,one" {
			t.Errorf("/messages: %v, want three,two,one", bodies)
		}

		// Current state and one state event.
		state := alice.ok("GET", room+"/state", nil)
		var stateEvents []struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(state.raw), &stateEvents); err != nil {
			t.Fatalf("/state: %v %s", err, state.raw)
		}
		types := map[string]bool{}
		for _, ev := range stateEvents {
			types[ev.Type] = true
		}
		for _, want := range []string{"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name", "m.room.topic"} {
			if !types[want] {
				t.Errorf("/state has no %s: %v", want, types)
			}
		}
		if name := alice.ok("GET", room+"/state/m.room.name/", nil); name.str("name") != "Split" {
			t.Errorf("room name %s", name.raw)
		}

		// The auth rules' refusal of a non-member's event crosses as
		// *api.NotAllowedError: 403 with the rule's reason, not the
		// answer to an unknown room.
		refused := bob.do("PUT", room+"/send/m.room.message/intrude", map[string]any{"msgtype": "m.text", "body": "let me in"})
		if refused.status != http.StatusForbidden || refused.errcode() != "M_FORBIDDEN" ||
			refused.str("error") == "" || refused.str("error") == "you are not in this room" || strings.Contains(refused.str("error"), "roomserver.") {
			t.Errorf("non-member send: %d %s", refused.status, refused.raw)
		}
		if r := bob.do("GET", room+"/messages?dir=b", nil); r.status != http.StatusForbidden {
			t.Errorf("non-member /messages: %d %s", r.status, r.raw)
		}

		// An unknown room is ErrRoomNotFound across the bus: answered as
		// a room the user is not in.
		unknown := rooms + url.PathEscape("!unknown:test.local")
		if r := alice.do("PUT", unknown+"/send/m.room.message/t1", map[string]any{"body": "x"}); r.status != http.StatusForbidden || r.str("error") != "you are not in this room" {
			t.Errorf("send to an unknown room: %d %s", r.status, r.raw)
		}
		if r := alice.do("GET", unknown+"/state", nil); r.status != http.StatusForbidden && r.status != http.StatusNotFound {
			t.Errorf("state of an unknown room: %d %s", r.status, r.raw)
		}

		// Membership changes: bob invited, joins, sends.
		alice.ok("POST", room+"/invite", map[string]any{"user_id": "@bob:test.local"})
		bob.ok("POST", room+"/join", map[string]any{})
		bob.ok("PUT", room+"/send/m.room.message/hello", map[string]any{"msgtype": "m.text", "body": "hello"})
		members := alice.ok("GET", room+"/joined_members", nil)
		if joined, _ := members.body["joined"].(map[string]any); len(joined) != 2 {
			t.Errorf("joined members: %s", members.raw)
		}

		// Aliases: set, resolve, taken (ErrAliasExists), unknown
		// (ErrNotFound), listed.
		alias := v3 + "/directory/room/" + url.PathEscape("#split:test.local")
		alice.ok("PUT", alias, map[string]any{"room_id": roomID})
		if r := alice.ok("GET", alias, nil); r.str("room_id") != roomID {
			t.Errorf("alias resolves to %s", r.raw)
		}
		if r := alice.do("PUT", alias, map[string]any{"room_id": roomID}); r.status != http.StatusConflict {
			t.Errorf("alias set twice: %d %s", r.status, r.raw)
		}
		if r := alice.do("GET", v3+"/directory/room/"+url.PathEscape("#nowhere:test.local"), nil); r.status != http.StatusNotFound || r.errcode() != "M_NOT_FOUND" {
			t.Errorf("unknown alias: %d %s", r.status, r.raw)
		}
		if r := alice.ok("GET", room+"/aliases", nil); !strings.Contains(r.raw, "#split:test.local") {
			t.Errorf("room aliases: %s", r.raw)
		}

		// The public room list: published, then listed.
		alice.ok("PUT", v3+"/directory/list/room/"+url.PathEscape(roomID), map[string]any{"visibility": "public"})
		if r := alice.ok("GET", v3+"/publicRooms", nil); !strings.Contains(r.raw, roomID) {
			t.Errorf("public rooms: %s", r.raw)
		}

		// Relations: a thread under "one", listed by /relations and
		// /threads, and aggregated on the root.
		inThread := alice.ok("PUT", room+"/send/m.room.message/thread1", map[string]any{
			"msgtype": "m.text", "body": "in a thread",
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": sent[0]},
		}).str("event_id")
		rel := alice.ok("GET", "/_matrix/client/v1/rooms/"+url.PathEscape(roomID)+"/relations/"+url.PathEscape(sent[0]), nil)
		if !strings.Contains(rel.raw, inThread) {
			t.Errorf("/relations: %s, want %s", rel.raw, inThread)
		}
		if r := alice.ok("GET", "/_matrix/client/v1/rooms/"+url.PathEscape(roomID)+"/threads", nil); !strings.Contains(r.raw, sent[0]) {
			t.Errorf("/threads: %s, want the root %s", r.raw, sent[0])
		}
		if r := alice.ok("GET", room+"/event/"+url.PathEscape(sent[0]), nil); !strings.Contains(r.raw, `"m.thread"`) {
			t.Errorf("thread root without its aggregation: %s", r.raw)
		}
	})
}

// TestClientWithoutRoomserver: a client process whose roomserver is not
// running starts, serves what needs no room, and answers room requests
// with an error at once rather than hanging.
func TestClientWithoutRoomserver(t *testing.T) {
	cfg := testConfig(t)
	cfg.Federation.Listen = listenOff
	cfg.Client.Registration.SharedSecret = splitSecret
	cfg.Client.Auth.Argon2Memory, cfg.Client.Auth.Argon2Time = 1024, 1
	a := start(t, cfg, []string{Client})
	alice := register(t, a.ClientURL(), "alice")
	began := time.Now()
	if r := alice.do("POST", "/_matrix/client/v3/createRoom", map[string]any{}); r.status != http.StatusInternalServerError {
		t.Errorf("createRoom without a roomserver: %d %s", r.status, r.raw)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("createRoom without a roomserver took %s", took)
	}
}
