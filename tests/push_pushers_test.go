package tests

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// fakeGateway is a push gateway (Push Gateway API) over TLS that records
// what it receives and answers as told.
type fakeGateway struct {
	srv *httptest.Server
	// caFile holds the server's certificate, for client.push.gateway_ca_file.
	caFile string

	mu sync.Mutex
	// received are the notification objects of the requests answered 200.
	received []map[string]any
	// attempts counts every request.
	attempts int
	// fail answers 503 while set; reject lists pushkeys to reject.
	fail   bool
	reject []string
}

func newFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	g := &fakeGateway{}
	g.srv = httptest.NewTLSServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	g.caFile = filepath.Join(t.TempDir(), "gateway-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.srv.Certificate().Raw})
	if err := os.WriteFile(g.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.attempts++
	if r.URL.Path != "/_matrix/push/v1/notify" || r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if g.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var body struct {
		Notification map[string]any `json:"notification"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	g.received = append(g.received, body.Notification)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"rejected": g.reject})
}

func (g *fakeGateway) url() string { return g.srv.URL + "/_matrix/push/v1/notify" }

func (g *fakeGateway) set(fail bool, reject ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail, g.reject = fail, reject
}

func (g *fakeGateway) attemptsSoFar() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.attempts
}

// waitFor waits until the gateway received a notification of eventID
// (for pushkey, when given) and returns it.
func (g *fakeGateway) waitFor(t *testing.T, eventID id.EventID, within time.Duration, pushkey ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		for _, n := range g.received {
			devs, _ := n["devices"].([]any)
			if len(pushkey) > 0 && (len(devs) == 0 || devs[0].(map[string]any)["pushkey"] != pushkey[0]) {
				continue
			}
			if n["event_id"] == eventID.String() {
				g.mu.Unlock()
				return n
			}
		}
		g.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("gateway never received %s", eventID)
	return nil
}

// gatewayConfig trusts g's certificate and lets pushers reach loopback.
func gatewayConfig(g *fakeGateway) func(*config.Config) {
	return func(c *config.Config) {
		c.Client.Push.GatewayCAFile = g.caFile
		c.Client.Push.AllowPrivateAddresses = true
		c.Client.Push.GatewayDeny = []string{"denied.example", "*.evil.example"}
	}
}

func setPusher(s *Server, c *mautrix.Client, body map[string]any) Response {
	return s.Do("POST", "/_matrix/client/v3/pushers/set", c.AccessToken, body)
}

func httpPusher(url, pushkey string, data map[string]any) map[string]any {
	if data == nil {
		data = map[string]any{}
	}
	data["url"] = url
	return map[string]any{"kind": "http", "app_id": "fr.gouv.tchap", "pushkey": pushkey, "app_display_name": "Tchap",
		"device_display_name": "phone", "lang": "fr", "data": data}
}

// TestPushers sets, lists and deletes pushers, and checks the refusals.
func TestPushers(t *testing.T) {
	t.Parallel()
	g := newFakeGateway(t)
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		setPusher(s, alice, httpPusher(g.url(), "key1", map[string]any{"format": "event_id_only"})).Expect(t, 200, "")
		list := s.Do("GET", "/_matrix/client/v3/pushers", alice.AccessToken, nil).Expect(t, 200, "").Body["pushers"].([]any)
		if len(list) != 1 {
			t.Fatalf("pushers: %v", list)
		}
		p := list[0].(map[string]any)
		if p["pushkey"] != "key1" || p["kind"] != "http" || p["app_id"] != "fr.gouv.tchap" || p["lang"] != "fr" ||
			p["data"].(map[string]any)["url"] != g.url() || p["data"].(map[string]any)["format"] != "event_id_only" {
			t.Fatalf("pusher: %v", p)
		}

		for name, tc := range map[string]struct {
			body    map[string]any
			status  int
			errcode string
		}{
			"http URL":        {httpPusher("http://push.example/_matrix/push/v1/notify", "k", nil), 400, "M_INVALID_PARAM"},
			"wrong path":      {httpPusher("https://push.example/notify", "k", nil), 400, "M_INVALID_PARAM"},
			"denied host":     {httpPusher("https://denied.example/_matrix/push/v1/notify", "k", nil), 400, "M_INVALID_PARAM"},
			"denied domain":   {httpPusher("https://a.evil.example/_matrix/push/v1/notify", "k", nil), 400, "M_INVALID_PARAM"},
			"no url":          {map[string]any{"kind": "http", "app_id": "a", "pushkey": "k", "app_display_name": "A", "device_display_name": "d", "lang": "fr", "data": map[string]any{}}, 400, "M_MISSING_PARAM"},
			"no lang":         {map[string]any{"kind": "http", "app_id": "a", "pushkey": "k", "app_display_name": "A", "device_display_name": "d", "data": map[string]any{"url": g.url()}}, 400, "M_MISSING_PARAM"},
			"no kind":         {map[string]any{"app_id": "a", "pushkey": "k"}, 400, "M_MISSING_PARAM"},
			"email":           {map[string]any{"kind": "email", "app_id": "m.email", "pushkey": "a@b.c", "app_display_name": "A", "device_display_name": "d", "lang": "fr", "data": map[string]any{}}, 400, "M_INVALID_PARAM"},
			"long app id":     {httpPusher(g.url(), "k", nil), 400, "M_INVALID_PARAM"},
			"data not object": {map[string]any{"kind": "http", "app_id": "a", "pushkey": "k", "app_display_name": "A", "device_display_name": "d", "lang": "fr", "data": "x"}, 400, "M_BAD_JSON"},
		} {
			if name == "long app id" {
				tc.body["app_id"] = string(make([]byte, 65))
			}
			r := setPusher(s, alice, tc.body)
			if r.Status != tc.status || r.Body["errcode"] != tc.errcode {
				t.Errorf("%s: %d %s", name, r.Status, r.Raw)
			}
		}
		if list := s.Do("GET", "/_matrix/client/v3/pushers", alice.AccessToken, nil).Body["pushers"].([]any); len(list) != 1 {
			t.Fatalf("refused pushers were stored: %v", list)
		}

		// bob takes the same pushkey (a shared device) without append:
		// alice's goes; with append both stay.
		setPusher(s, bob, httpPusher(g.url(), "key1", nil)).Expect(t, 200, "")
		if list := s.Do("GET", "/_matrix/client/v3/pushers", alice.AccessToken, nil).Body["pushers"].([]any); len(list) != 0 {
			t.Fatalf("alice kept a pushkey bob took: %v", list)
		}
		withAppend := httpPusher(g.url(), "key1", nil)
		withAppend["append"] = true
		setPusher(s, alice, withAppend).Expect(t, 200, "")
		if list := s.Do("GET", "/_matrix/client/v3/pushers", bob.AccessToken, nil).Body["pushers"].([]any); len(list) != 1 {
			t.Fatalf("append removed bob's pusher: %v", list)
		}
		// A pusher dies with the device that set it.
		phone := s.Login(alice.UserID)
		setPusher(s, phone, httpPusher(g.url(), "phonekey", nil)).Expect(t, 200, "")
		if _, err := phone.Logout(ctx()); err != nil {
			t.Fatal(err)
		}
		if list := s.Do("GET", "/_matrix/client/v3/pushers", alice.AccessToken, nil).Body["pushers"].([]any); len(list) != 1 {
			t.Fatalf("a logged-out device's pusher stayed: %v", list)
		}
		// kind null deletes.
		setPusher(s, alice, map[string]any{"kind": nil, "app_id": "fr.gouv.tchap", "pushkey": "key1"}).Expect(t, 200, "")
		if list := s.Do("GET", "/_matrix/client/v3/pushers", alice.AccessToken, nil).Body["pushers"].([]any); len(list) != 0 {
			t.Fatalf("deleted pusher still listed: %v", list)
		}
	}, gatewayConfig(g))
}

// TestPushGateway sends events to a member with pushers and checks what
// the fake gateway receives: full and event_id_only formats, the unread
// badge, retries after the gateway failed (also across a restart), and
// a rejected pushkey's pusher removed.
func TestPushGateway(t *testing.T) {
	t.Parallel()
	// Each engine has its own gateway: the two run side by side and the
	// test counts what its gateway received.
	storagetest.Engines(t, func(t *testing.T, url string) {
		g := newFakeGateway(t)
		s := StartServer(t, url, gatewayConfig(g))
		alice, bob := s.Register("alice"), s.Register("bob")
		room := createRoom(t, s, bob, map[string]any{"preset": "public_chat", "name": "Salon"})
		if _, err := alice.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		setPusher(s, alice, httpPusher(g.url(), "full", map[string]any{"app_secret": "s3"})).Expect(t, 200, "")
		setPusher(s, alice, httpPusher(g.url(), "idonly", map[string]any{"format": "event_id_only"})).Expect(t, 200, "")

		first := sendText(t, bob, room, "bonjour")
		second := sendText(t, bob, room, "ça va ?")
		full := g.waitFor(t, second, 10*time.Second, "full")
		idOnly := g.waitFor(t, second, 10*time.Second, "idonly")
		if full["room_id"] != room.String() || full["type"] != "m.room.message" || full["sender"] != bob.UserID.String() ||
			full["room_name"] != "Salon" || full["content"].(map[string]any)["body"] != "ça va ?" {
			t.Fatalf("full notification: %v", full)
		}
		if unread := full["counts"].(map[string]any)["unread"]; unread != float64(2) {
			t.Fatalf("badge: %v, want 2", unread)
		}
		dev := full["devices"].([]any)[0].(map[string]any)
		if dev["app_id"] != "fr.gouv.tchap" || dev["data"].(map[string]any)["app_secret"] != "s3" || dev["data"].(map[string]any)["url"] != nil {
			t.Fatalf("device: %v", dev)
		}
		if _, ok := idOnly["content"]; ok || idOnly["room_id"] != room.String() || idOnly["sender"] != nil {
			t.Fatalf("event_id_only notification: %v", idOnly)
		}
		g.waitFor(t, first, time.Second, "full")
		g.waitFor(t, first, time.Second, "idonly")
		// bob has no pusher, and no notification of his own messages.
		g.mu.Lock()
		total := len(g.received)
		g.mu.Unlock()
		if total != 4 {
			t.Fatalf("gateway received %d notifications, want 4", total)
		}

		// The gateway fails: the notification waits and comes after a
		// restart of the server once the gateway is back.
		g.set(true)
		before := g.attemptsSoFar()
		third := sendText(t, bob, room, "tu es là ?")
		deadline := time.Now().Add(10 * time.Second)
		for g.attemptsSoFar() == before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if g.attemptsSoFar() == before {
			t.Fatal("no delivery attempt while the gateway failed")
		}
		s.Restart()
		g.set(false)
		// The failures before the restart set a doubling backoff, kept
		// across it (1 s, 2 s, 4 s...): on a loaded machine a slow stop
		// fails a few more times, so the wait is generous.
		g.waitFor(t, third, 60*time.Second, "full")
		g.waitFor(t, third, 10*time.Second, "idonly")

		// The gateway rejects a pushkey: its pusher goes.
		g.set(false, "idonly")
		fourth := sendText(t, bob, room, "dernier")
		g.waitFor(t, fourth, 10*time.Second)
		deadline = time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			list := s.Do("GET", "/_matrix/client/v3/pushers", alice.AccessToken, nil).Expect(t, 200, "").Body["pushers"].([]any)
			if len(list) == 1 && list[0].(map[string]any)["pushkey"] == "full" {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("the rejected pusher was not removed")
	})
}
