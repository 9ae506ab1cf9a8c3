package tests

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
)

const turnSecret = "coturn-static-auth-secret"

func TestTURNServer(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		r := s.Do("GET", "/_matrix/client/v3/voip/turnServer", alice.AccessToken, nil).Expect(t, 200, "")
		user, _ := r.Body["username"].(string)
		pass, _ := r.Body["password"].(string)
		if r.Body["ttl"] != float64(1800) || len(r.Body["uris"].([]any)) != 2 {
			t.Fatalf("turnServer: %s", r.Raw)
		}
		// What coturn does with use-auth-secret: the username is
		// "<expiry>:<anything>", the password base64(HMAC-SHA1(secret,
		// username)), and the credentials hold until expiry.
		expiry, who, ok := strings.Cut(user, ":")
		exp, err := strconv.ParseInt(expiry, 10, 64)
		if !ok || err != nil || who != alice.UserID.String() {
			t.Fatalf("username %q", user)
		}
		if d := time.Until(time.Unix(exp, 0)); d < 29*time.Minute || d > 31*time.Minute {
			t.Fatalf("expiry in %v", d)
		}
		mac := hmac.New(sha1.New, []byte(turnSecret))
		mac.Write([]byte(user))
		if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); pass != want {
			t.Fatalf("password %q, coturn expects %q", pass, want)
		}
		s.Do("GET", "/_matrix/client/v3/voip/turnServer", "", nil).Expect(t, 401, "M_MISSING_TOKEN")
	}, func(c *config.Config) {
		c.Client.Calls.TURNURIs = []string{"turn:turn.test.local:3478?transport=udp", "turns:turn.test.local:5349?transport=tcp"}
		c.Client.Calls.TURNSharedSecret = turnSecret
		c.Client.Calls.TURNUserLifetime = config.Duration(30 * time.Minute)
	})
}

func TestTURNServerUnconfigured(t *testing.T) {
	t.Parallel()
	s := StartServer(t, "sqlite:hs.db")
	alice := s.Register("alice")
	r := s.Do("GET", "/_matrix/client/v3/voip/turnServer", alice.AccessToken, nil).Expect(t, 200, "")
	if len(r.Body) != 0 {
		t.Fatalf("unconfigured turnServer: %s", r.Raw)
	}
	r = s.Do("GET", "/.well-known/matrix/client", "", nil).Expect(t, 200, "")
	if _, ok := r.Body["org.matrix.msc4143.rtc_foci"]; ok {
		t.Fatalf("foci without configuration: %s", r.Raw)
	}
}

func TestOpenIDAndRTCTransports(t *testing.T) {
	t.Parallel()
	const lk = "https://livekit-jwt.test.local"
	s := StartServer(t, "sqlite:hs.db", func(c *config.Config) {
		c.Federation.Listen = "127.0.0.1:0"
		if err := config.WriteSelfSignedCert(filepath.Join(c.Global.DataDir, "federation.crt"), filepath.Join(c.Global.DataDir, "federation.key"), serverName); err != nil {
			t.Fatal(err)
		}
		c.Client.Calls.RTCTransports = []config.RTCTransport{{Type: "livekit", LiveKitServiceURL: lk}}
	})
	alice, bob := s.Register("alice"), s.Register("bob")

	r := s.Do("GET", "/.well-known/matrix/client", "", nil).Expect(t, 200, "")
	foci, _ := r.Body["org.matrix.msc4143.rtc_foci"].([]any)
	if len(foci) != 1 || foci[0].(map[string]any)["livekit_service_url"] != lk || foci[0].(map[string]any)["type"] != "livekit" {
		t.Fatalf("well-known: %s", r.Raw)
	}
	r = s.Do("GET", "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", alice.AccessToken, nil).Expect(t, 200, "")
	if tr, _ := r.Body["rtc_transports"].([]any); len(tr) != 1 || tr[0].(map[string]any)["livekit_service_url"] != lk {
		t.Fatalf("rtc/transports: %s", r.Raw)
	}

	openIDPath := "/_matrix/client/v3/user/" + url.PathEscape(alice.UserID.String()) + "/openid/request_token"
	s.Do("POST", openIDPath, bob.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
	r = s.Do("POST", openIDPath, alice.AccessToken, map[string]any{}).Expect(t, 200, "")
	token, _ := r.Body["access_token"].(string)
	if token == "" || r.Body["token_type"] != "Bearer" || r.Body["matrix_server_name"] != serverName || r.Body["expires_in"] != float64(3600) {
		t.Fatalf("request_token: %s", r.Raw)
	}

	// The LiveKit JWT service asks the federation API, without any
	// X-Matrix signature.
	fed := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	userinfo := func(tok string) (int, map[string]any) {
		resp, err := fed.Get(s.app.FederationURL() + "/_matrix/federation/v1/openid/userinfo?access_token=" + url.QueryEscape(tok))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if status, body := userinfo(token); status != 200 || body["sub"] != alice.UserID.String() {
		t.Fatalf("userinfo: %d %v", status, body)
	}
	if status, body := userinfo("not-a-token"); status != 401 || body["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Fatalf("userinfo of a bad token: %d %v", status, body)
	}
	// An access token is not an OpenID token.
	if status, _ := userinfo(alice.AccessToken); status != 401 {
		t.Fatalf("userinfo accepted an access token: %d", status)
	}
}

// delayedPath is the path of the delayed events API.
const delayedPath = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"

// delayedIDs lists c's waiting delayed events.
func delayedIDs(t testing.TB, s *Server, c *mautrix.Client) []string {
	t.Helper()
	r := s.Do("GET", delayedPath, c.AccessToken, nil).Expect(t, 200, "")
	var ids []string
	for _, e := range r.Body["delayed_events"].([]any) {
		ids = append(ids, e.(map[string]any)["delay_id"].(string))
	}
	return ids
}

// roomHas reports whether room's timeline, as c reads it, has a message
// with body.
func roomHas(t testing.TB, c *mautrix.Client, room id.RoomID, body string) bool {
	t.Helper()
	got, _ := allMessages(t, c, room, mautrix.DirectionBackward, 50)
	for _, b := range got {
		if b == body {
			return true
		}
	}
	return false
}

func TestDelayedEvents(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		r := s.Do("GET", "/_matrix/client/versions", "", nil).Expect(t, 200, "")
		if r.Body["unstable_features"].(map[string]any)["org.matrix.msc4140"] != true {
			t.Fatalf("versions: %s", r.Raw)
		}
		send := func(c *mautrix.Client, delay string, body string) Response {
			return s.Do("PUT", roomPath(room, "send", "m.room.message", body)+"?org.matrix.msc4140.delay="+delay, c.AccessToken,
				map[string]any{"msgtype": "m.text", "body": body})
		}
		// Sent when the delay runs out.
		send(alice, "300", "soon").Expect(t, 200, "")
		waitUntil(t, "delayed message sent", func() bool { return roomHas(t, alice, room, "soon") })

		// Sent at once on request; a state event.
		r = s.Do("PUT", roomPath(room, "state", "org.example.call", alice.UserID.String())+"?org.matrix.msc4140.delay=60000",
			alice.AccessToken, map[string]any{"left": true}).Expect(t, 200, "")
		stateID := r.Body["delay_id"].(string)
		if ids := delayedIDs(t, s, alice); len(ids) != 1 || ids[0] != stateID {
			t.Fatalf("waiting: %v", ids)
		}
		if ids := delayedIDs(t, s, bob); len(ids) != 0 {
			t.Fatalf("bob sees alice's delayed events: %v", ids)
		}
		s.Do("POST", delayedPath+"/"+stateID, bob.AccessToken, map[string]any{"action": "send"}).Expect(t, 404, "M_NOT_FOUND")
		s.Do("POST", delayedPath+"/"+stateID, alice.AccessToken, map[string]any{"action": "send"}).Expect(t, 200, "")
		if c := stateContent(t, s, alice, room, "org.example.call", alice.UserID.String()); c["left"] != true {
			t.Fatalf("state: %v", c)
		}

		// Restarted, then cancelled: never sent.
		id := send(alice, "60000", "never").Expect(t, 200, "").Body["delay_id"].(string)
		before := s.Do("GET", delayedPath, alice.AccessToken, nil).Body["delayed_events"].([]any)[0].(map[string]any)["running_since"].(float64)
		time.Sleep(20 * time.Millisecond)
		s.Do("POST", delayedPath+"/"+id, alice.AccessToken, map[string]any{"action": "restart"}).Expect(t, 200, "")
		after := s.Do("GET", delayedPath, alice.AccessToken, nil).Body["delayed_events"].([]any)[0].(map[string]any)["running_since"].(float64)
		if after <= before {
			t.Fatalf("restart did not move running_since: %v → %v", before, after)
		}
		s.Do("POST", delayedPath+"/"+id, alice.AccessToken, map[string]any{"action": "cancel"}).Expect(t, 200, "")
		s.Do("POST", delayedPath+"/"+id, alice.AccessToken, map[string]any{"action": "cancel"}).Expect(t, 404, "M_NOT_FOUND")
		if roomHas(t, alice, room, "never") || len(delayedIDs(t, s, alice)) != 0 {
			t.Fatal("a cancelled event was sent or is still waiting")
		}

		// Another user's state change cancels a delayed change of that
		// state; the writer's own delayed events stay.
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		s.Do("PUT", roomPath(room, "state", "org.example.shared", "k")+"?org.matrix.msc4140.delay=60000", bob.AccessToken, map[string]any{"v": "bob"}).Expect(t, 200, "")
		own := s.Do("PUT", roomPath(room, "state", "org.example.shared", "k")+"?org.matrix.msc4140.delay=60000", alice.AccessToken, map[string]any{"v": "later"}).Expect(t, 200, "").Body["delay_id"].(string)
		s.Do("PUT", roomPath(room, "state", "org.example.shared", "k"), alice.AccessToken, map[string]any{"v": "alice"}).Expect(t, 200, "")
		waitUntil(t, "bob's delayed state cancelled", func() bool { return len(delayedIDs(t, s, bob)) == 0 })
		if ids := delayedIDs(t, s, alice); len(ids) != 1 || ids[0] != own {
			t.Fatalf("alice's own delayed state: %v", ids)
		}
		s.Do("POST", delayedPath+"/"+own, alice.AccessToken, map[string]any{"action": "cancel"}).Expect(t, 200, "")

		// Refusals.
		send(alice, "90000000", "too late").Expect(t, 400, "M_MAX_DELAY_EXCEEDED")
		send(alice, "-5", "bad").Expect(t, 400, "M_INVALID_PARAM")
		outsider := s.Register("carol")
		send(outsider, "1000", "intruder").Expect(t, 403, "M_FORBIDDEN")
		s.Do("POST", delayedPath+"/whatever", alice.AccessToken, map[string]any{"action": "explode"}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("POST", delayedPath+"/whatever", alice.AccessToken, map[string]any{}).Expect(t, 400, "M_MISSING_PARAM")

		// Durable: one due during a restart is sent after it.
		id = send(alice, "3000", "after restart").Expect(t, 200, "").Body["delay_id"].(string)
		s.Restart()
		if ids := delayedIDs(t, s, alice); len(ids) != 1 || ids[0] != id {
			t.Fatalf("after a restart, waiting: %v", ids)
		}
		waitUntil(t, "sent after a restart", func() bool { return roomHas(t, alice, room, "after restart") })
	}, func(c *config.Config) { c.Client.Calls.MaxEventDelay = config.Duration(24 * time.Hour) })
}
