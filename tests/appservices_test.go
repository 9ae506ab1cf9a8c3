package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// bridgeEngines runs fn per storage engine on a server with two bridges
// registered: tg (users @tg_*, aliases #tg_*) and wa (@wa_*, #wa_*).
func bridgeEngines(t *testing.T, fn func(t *testing.T, s *Server, tg, wa *testBridge), mutate ...func(*config.Config)) {
	storagetest.Engines(t, func(t *testing.T, dbURL string) {
		tg, wa := newTestBridge(t, "tgbridge", "tg"), newTestBridge(t, "wabridge", "wa")
		s := StartServer(t, dbURL, append([]func(*config.Config){withBridges(tg, wa)}, mutate...)...)
		tg.attach(s)
		wa.attach(s)
		fn(t, s, tg, wa)
	})
}

// userPath is path with the masquerading user_id parameter.
func userPath(path string, user id.UserID) string {
	return path + "?user_id=" + url.QueryEscape(user.String())
}

// TestAppServiceBridge drives a mautrix-go bridge through the server:
// user and alias queries create what the bridge bridges, its users act
// through masquerading, messages go both ways, the ping works both ways,
// MSC4190 devices need no UIA, and third-party lookups and the
// appservice directory reach it.
func TestAppServiceBridge(t *testing.T) {
	t.Parallel()
	bridgeEngines(t, func(t *testing.T, s *Server, tg, wa *testBridge) {
		alice := s.Register("alice")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})

		// Inviting an unknown user of the bridge's namespace asks the
		// bridge, which registers it.
		bobID := id.NewUserID("tg_bob", serverName)
		if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: bobID}); err != nil {
			t.Fatalf("invite: %v", err)
		}
		if !tg.queried(bobID) {
			t.Fatal("the bridge was not asked about the invitee")
		}
		if wa.queried(bobID) {
			t.Fatal("another bridge was asked about a user outside its namespace")
		}
		tg.waitFor("the invite", 10*time.Second, func(txns []bridgeTxn) bool { return hasMember(txns, bobID, "invite") })

		// The bridge's user acts through masquerading.
		bob := tg.AS.Intent(bobID)
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatalf("bridge user join: %v", err)
		}
		sync, _ := newSyncer(t, alice, "")
		if _, err := bob.SendText(ctx(), room, "hello from telegram"); err != nil {
			t.Fatalf("bridge user send: %v", err)
		}
		sync.until("bridged message", func(r *mautrix.RespSync) bool {
			for _, e := range r.Rooms.Join[room].Timeline.Events {
				if e.Sender == bobID && strings.Contains(string(e.Content.VeryRaw), "hello from telegram") {
					return true
				}
			}
			return false
		})
		// And the bridge hears the room: one of its users is in it.
		sendText(t, alice, room, "hello to telegram")
		tg.waitBodies(10*time.Second, "hello from telegram", "hello to telegram")
		for _, txn := range wa.Txns() {
			if len(txn.EventIDs) > 0 {
				t.Fatalf("the other bridge received events of a room it has no part in: %+v", txn)
			}
		}

		// Joining an unknown alias of the bridge's namespace asks it; it
		// makes the room, and the join goes ahead.
		alias := id.RoomAlias("#tg_general:" + serverName)
		joined, err := alice.JoinRoom(ctx(), alias.String(), nil)
		if err != nil {
			t.Fatalf("join by bridged alias: %v", err)
		}
		if made := tg.aliasRoom(alias); made == "" || joined.RoomID != made {
			t.Fatalf("joined %s, the bridge made %q", joined.RoomID, made)
		}
		if _, err := alice.JoinRoom(ctx(), "#nobridge:"+serverName, nil); errcode(err) != "M_NOT_FOUND" {
			t.Fatalf("unknown alias outside namespaces: %v", err)
		}

		// Ping, both ways.
		if resp, err := tg.AS.BotClient().AppservicePing(ctx(), tg.Reg.ID, "ping-1"); err != nil || resp.DurationMS < 0 {
			t.Fatalf("ping: %+v %v", resp, err)
		}
		s.Do("POST", "/_matrix/client/v1/appservice/"+wa.Reg.ID+"/ping", tg.Reg.AppToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
		tg.Down()
		r := s.Do("POST", "/_matrix/client/v1/appservice/"+tg.Reg.ID+"/ping", tg.Reg.AppToken, map[string]any{})
		r.Expect(t, 502, "M_CONNECTION_FAILED")
		tg.Up()

		// MSC4190: the bridge makes and deletes its users' devices
		// without UIA.
		dev := id.DeviceID("TGBOBDEVICE")
		if err := bob.CreateDeviceMSC4190(ctx(), dev, "telegram bridge"); err != nil {
			t.Fatalf("create device: %v", err)
		}
		who := s.Do("GET", userPath("/_matrix/client/v3/account/whoami", bobID)+"&org.matrix.msc3202.device_id="+string(dev), tg.Reg.AppToken, nil).Expect(t, 200, "")
		if who.Body["device_id"] != string(dev) {
			t.Fatalf("device masquerading: %s", who.Raw)
		}
		s.Do("DELETE", userPath("/_matrix/client/v3/devices/"+string(dev), bobID), tg.Reg.AppToken, map[string]any{}).Expect(t, 200, "")
		s.Do("GET", userPath("/_matrix/client/v3/account/whoami", bobID)+"&device_id="+string(dev), tg.Reg.AppToken, nil).Expect(t, 403, "M_FORBIDDEN")

		// Third-party lookups go to the bridge declaring the protocol.
		protos := s.Do("GET", "/_matrix/client/v3/thirdparty/protocols", alice.AccessToken, nil).Expect(t, 200, "")
		if _, ok := protos.Body["tgproto"]; !ok {
			t.Fatalf("protocols: %s", protos.Raw)
		}
		users := s.Do("GET", "/_matrix/client/v3/thirdparty/user/tgproto?name=bob", alice.AccessToken, nil).Expect(t, 200, "")
		if !strings.Contains(string(users.Raw), "@tg_bob:") {
			t.Fatalf("third-party users: %s", users.Raw)
		}
		s.Do("GET", "/_matrix/client/v3/thirdparty/protocol/nothing", alice.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")

		// The appservice room directory.
		path := "/_matrix/client/v3/directory/list/appservice/tgnet/" + room.String()
		s.Do("PUT", path, alice.AccessToken, map[string]string{"visibility": "public"}).Expect(t, 403, "M_FORBIDDEN")
		s.Do("PUT", path, tg.Reg.AppToken, map[string]string{"visibility": "public"}).Expect(t, 200, "")
		pub := s.Do("GET", "/_matrix/client/v3/publicRooms", alice.AccessToken, nil).Expect(t, 200, "")
		if !strings.Contains(string(pub.Raw), room.String()) {
			t.Fatalf("published room not listed: %s", pub.Raw)
		}

		// The admin sees the registrations and their queues, not their
		// tokens.
		admin := s.RegisterAdmin("root")
		s.Do("GET", "/_synapse/admin/v1/appservices", alice.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		list := s.Do("GET", "/_synapse/admin/v1/appservices", admin.AccessToken, nil).Expect(t, 200, "")
		if jsonNumber(list.Body["total"]) != 2 || strings.Contains(string(list.Raw), tg.Reg.AppToken) || strings.Contains(string(list.Raw), tg.Reg.ServerToken) {
			t.Fatalf("admin list: %s", list.Raw)
		}
	})
}

// hasMember reports whether txns hold userID's membership event.
func hasMember(txns []bridgeTxn, userID id.UserID, membership string) bool {
	for _, txn := range txns {
		for _, raw := range rawEventsOf(txn) {
			if raw["type"] == "m.room.member" && raw["state_key"] == userID.String() {
				if c, _ := raw["content"].(map[string]any); c["membership"] == membership {
					return true
				}
			}
		}
	}
	return false
}

// TestAppServiceRefusals checks what a bridge may not do, and what others
// may not do in its namespace.
func TestAppServiceRefusals(t *testing.T) {
	t.Parallel()
	bridgeEngines(t, func(t *testing.T, s *Server, tg, wa *testBridge) {
		alice := s.Register("alice")
		whoami := "/_matrix/client/v3/account/whoami"

		s.Do("GET", whoami, "not-a-bridge-token", nil).Expect(t, 401, "M_UNKNOWN_TOKEN")
		r := s.Do("GET", whoami, tg.Reg.AppToken, nil).Expect(t, 200, "")
		if r.Body["user_id"] != "@tgbot:"+serverName {
			t.Fatalf("bridge's own user: %s", r.Raw)
		}
		r = s.Do("GET", whoami+"?access_token="+url.QueryEscape(tg.Reg.AppToken), "", nil).Expect(t, 200, "")
		// Masquerading outside the namespace, or as a user not registered.
		s.Do("GET", userPath(whoami, alice.UserID), tg.Reg.AppToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("GET", userPath(whoami, id.NewUserID("wa_carol", serverName)), tg.Reg.AppToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("GET", userPath(whoami, id.NewUserID("tg_ghost", serverName)), tg.Reg.AppToken, nil).Expect(t, 403, "M_FORBIDDEN")

		// Registration of namespaced users, without UIA, by their bridge
		// only.
		reg := func(token, user string) Response {
			return s.Do("POST", "/_matrix/client/v3/register", token, map[string]any{"type": "m.login.application_service", "username": user})
		}
		reg(tg.Reg.AppToken, "wa_carol").Expect(t, 400, "M_EXCLUSIVE")
		reg("", "tg_erin").Expect(t, 401, "M_MISSING_TOKEN")
		erin := reg(tg.Reg.AppToken, "tg_erin").Expect(t, 200, "")
		if erin.Body["user_id"] != "@tg_erin:"+serverName || erin.Body["access_token"] == "" {
			t.Fatalf("bridge registration: %s", erin.Raw)
		}
		reg(tg.Reg.AppToken, "tg_erin").Expect(t, 400, "M_USER_IN_USE")
		// Ordinary registration (open here) of a reserved user id.
		s.Do("POST", "/_matrix/client/v3/register", "", map[string]any{"username": "tg_dave", "password": testPassword,
			"auth": map[string]any{"type": "m.login.dummy"}}).Expect(t, 400, "M_EXCLUSIVE")
		s.Do("GET", "/_matrix/client/v3/register/available?username=wa_x", "", nil).Expect(t, 400, "M_EXCLUSIVE")
		s.Do("POST", "/_matrix/client/v3/register", "", map[string]any{"username": "dave", "password": testPassword,
			"auth": map[string]any{"type": "m.login.dummy"}}).Expect(t, 200, "")

		// m.login.application_service login.
		login := func(token, user string) Response {
			return s.Do("POST", "/_matrix/client/v3/login", token, map[string]any{"type": "m.login.application_service",
				"identifier": map[string]string{"type": "m.id.user", "user": user}})
		}
		l := login(tg.Reg.AppToken, "tg_erin").Expect(t, 200, "")
		s.Do("GET", whoami, l.Body["access_token"].(string), nil).Expect(t, 200, "")
		login(wa.Reg.AppToken, "tg_erin").Expect(t, 400, "M_EXCLUSIVE")
		login(tg.Reg.AppToken, "alice").Expect(t, 400, "M_EXCLUSIVE")
		login("nope", "tg_erin").Expect(t, 401, "M_UNKNOWN_TOKEN")

		// An alias of a bridge's exclusive namespace is refused to others.
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		s.Do("PUT", "/_matrix/client/v3/directory/room/"+url.PathEscape("#wa_mine:"+serverName), alice.AccessToken,
			map[string]string{"room_id": room.String()}).Expect(t, 400, "M_EXCLUSIVE")
		s.Do("POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{"room_alias_name": "tg_mine"}).Expect(t, 400, "M_EXCLUSIVE")

		// rate_limited: false spares the bridge the per-user limit others
		// meet (the test sets it to a burst of 5).
		limited := false
		for i := 0; i < 20; i++ {
			if s.Do("GET", whoami, alice.AccessToken, nil).Status == http.StatusTooManyRequests {
				limited = true
			}
			s.Do("GET", whoami, tg.Reg.AppToken, nil).Expect(t, 200, "")
		}
		if !limited {
			t.Fatal("the ordinary user was never limited: the test proves nothing")
		}

		// A third application service, with no url and a non-exclusive
		// namespace of every user, overlapping the others' exclusive ones:
		// it may act as alice, not as tg's users.
		s.Do("GET", userPath(whoami, alice.UserID), "all-as-token", nil).Expect(t, 200, "")
		s.Do("GET", userPath(whoami, id.NewUserID("tg_erin", serverName)), "all-as-token", nil).Expect(t, 403, "M_FORBIDDEN")
		reg("all-as-token", "tg_zed").Expect(t, 400, "M_EXCLUSIVE")
		reg("all-as-token", "zed").Expect(t, 200, "")
	}, func(c *config.Config) {
		c.Client.Registration.Enabled, c.Client.Registration.AllowDummy = true, true
		c.Client.RateLimits.Request = config.RateLimit{PerSecond: 1, Burst: 5}
		all := filepath.Join(c.Global.DataDir, "all.yaml")
		if err := os.WriteFile(all, []byte(`id: watcher
url: null
as_token: all-as-token
hs_token: all-hs-token
sender_localpart: watcher
rate_limited: false
namespaces:
  users: [{exclusive: false, regex: '@.*'}]
`), 0o600); err != nil {
			panic(err)
		}
		c.AppServices.ConfigFiles = append(c.AppServices.ConfigFiles, all)
	})
}

// TestAppServiceRetrySameTxn checks that a transaction the bridge refused
// comes back with the same id and the same events.
func TestAppServiceRetrySameTxn(t *testing.T) {
	t.Parallel()
	bridgeEngines(t, func(t *testing.T, s *Server, tg, _ *testBridge) {
		alice := s.Register("alice")
		room := bridgedRoom(t, s, alice, tg)
		tg.FailNext(2)
		sendText(t, alice, room, "refused twice")
		tg.waitBodies(10*time.Second, "refused twice")
		var attempts []bridgeTxn
		for _, txn := range tg.Txns() {
			if len(txn.Bodies) == 1 && txn.Bodies[0] == "refused twice" {
				attempts = append(attempts, txn)
			}
		}
		if len(attempts) != 3 || !attempts[0].Refused || !attempts[1].Refused || attempts[2].Refused {
			t.Fatalf("want two refused attempts and an accepted one, got %+v", attempts)
		}
		for _, a := range attempts[1:] {
			if a.ID != attempts[0].ID || strings.Join(a.EventIDs, ",") != strings.Join(attempts[0].EventIDs, ",") {
				t.Fatalf("retry changed the transaction: %+v", attempts)
			}
		}
		if got := tg.Bodies(); len(got) != 1 || got[0] != "refused twice" {
			t.Fatalf("bodies %v", got)
		}
	})
}

// bridgedRoom makes a room of alice's with tg's user @tg_bob joined, and
// waits until the bridge has heard the join.
func bridgedRoom(t testing.TB, s *Server, alice *mautrix.Client, tg *testBridge) id.RoomID {
	t.Helper()
	room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
	bobID := id.NewUserID("tg_bob", serverName)
	if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: bobID}); err != nil {
		t.Fatalf("invite: %v", err)
	}
	if _, err := tg.AS.Intent(bobID).JoinRoomByID(ctx(), room); err != nil {
		t.Fatalf("bridge user join: %v", err)
	}
	tg.waitFor("the join", 10*time.Second, func(txns []bridgeTxn) bool { return hasMember(txns, bobID, "join") })
	return room
}

// TestAppServiceBridgeDown sends a burst of 500 messages while the bridge
// is down, restarting the server in the middle: once the bridge is back it
// has them all, in order, once each.
func TestAppServiceBridgeDown(t *testing.T) {
	t.Parallel()
	bridgeEngines(t, func(t *testing.T, s *Server, tg, _ *testBridge) {
		alice := s.Register("alice")
		admin := s.RegisterAdmin("root")
		room := bridgedRoom(t, s, alice, tg)
		tg.Down()
		want := texts("burst ", 500)
		for i, body := range want {
			if i == 250 {
				s.Restart()
			}
			sendText(t, alice, room, body)
		}
		list := s.Do("GET", "/_synapse/admin/v1/appservices", admin.AccessToken, nil).Expect(t, 200, "")
		if !strings.Contains(string(list.Raw), `"last_error"`) || !strings.Contains(string(list.Raw), `"pending_events":`) {
			t.Fatalf("admin list while down: %s", list.Raw)
		}
		tg.Up()
		got := tg.waitBodies(60*time.Second, want[len(want)-1])
		if !sameList(got, want) {
			for i := range want {
				if i >= len(got) || got[i] != want[i] {
					t.Logf("first difference at %d: got %q", i, got[i:min(i+3, len(got))])
					break
				}
			}
			for _, txn := range tg.Txns() {
				t.Logf("txn %s refused=%v: %d events, first %v", txn.ID, txn.Refused, len(txn.Bodies), txn.Bodies[:min(1, len(txn.Bodies))])
			}
			t.Fatalf("bridge got %d messages, want the 500 in order", len(got))
		}
		seen := map[string]string{}
		for _, txn := range tg.Txns() {
			ids := strings.Join(txn.EventIDs, ",")
			if prev, ok := seen[txn.ID]; ok && prev != ids {
				t.Fatalf("txn %s resent with other events", txn.ID)
			}
			seen[txn.ID] = ids
		}
		list = s.Do("GET", "/_synapse/admin/v1/appservices", admin.AccessToken, nil).Expect(t, 200, "")
		if !strings.Contains(string(list.Raw), `"pending_events":0`) {
			t.Fatalf("admin list after: %s", list.Raw)
		}
	})
}

// BenchmarkAppServiceDelivery measures events per second delivered to a
// bridge: b.N messages queued while the bridge is down, then the time it
// takes to push them all once it is back.
func BenchmarkAppServiceDelivery(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			dbURL := storagetest.SQLiteURL(b)
			if engine == "postgres" {
				dbURL = storagetest.PostgresURL(b)
			}
			tg := newTestBridge(b, "tgbridge", "tg")
			s := StartServer(b, dbURL, withBridges(tg), func(c *config.Config) {
				c.Client.RateLimits.Request = config.RateLimit{PerSecond: 0, Burst: 1}
			})
			tg.attach(s)
			alice := s.Register("alice")
			room := bridgedRoom(b, s, alice, tg)
			tg.Down()
			want := texts("bench ", b.N)
			for _, body := range want {
				sendText(b, alice, room, body)
			}
			b.ResetTimer()
			start := time.Now()
			tg.Up()
			tg.waitBodies(5*time.Minute, want[len(want)-1])
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// TestAppServiceEphemeral checks that a bridge that asked for ephemeral
// events (MSC2409) receives the typing, receipts and presence of its
// rooms' members and the to-device messages for its users, under both
// the stable and the unstable field names, and (MSC3202) its devices'
// one-time key counts and the device-list changes of its rooms' members.
func TestAppServiceEphemeral(t *testing.T) {
	t.Parallel()
	bridgeEngines(t, func(t *testing.T, s *Server, tg, _ *testBridge) {
		alice := s.Register("alice")
		room := bridgedRoom(t, s, alice, tg)
		evID := sendText(t, alice, room, "read me")
		if _, err := alice.UserTyping(ctx(), room, true, 10*time.Second); err != nil {
			t.Fatalf("typing: %v", err)
		}
		if err := alice.SendReceipt(ctx(), room, evID, "m.read", nil); err != nil {
			t.Fatalf("receipt: %v", err)
		}
		if err := alice.SetPresence(ctx(), mautrix.ReqPresence{Presence: "online", StatusMsg: "at work"}); err != nil {
			t.Fatalf("presence: %v", err)
		}
		bobID := id.NewUserID("tg_bob", serverName)
		s.Do("PUT", "/_matrix/client/v3/sendToDevice/org.example.ping/txn1", alice.AccessToken, map[string]any{
			"messages": map[string]any{bobID.String(): map[string]any{"BOBDEVICE": map[string]string{"hello": "bridge"}}},
		}).Expect(t, 200, "")
		// To every device ("*"): the bridge gets one per device.
		s.Do("PUT", userPath("/_matrix/client/v3/devices/TGBOBSTAR", bobID), tg.Reg.AppToken, map[string]any{}).Expect(t, 200, "")
		s.Do("PUT", "/_matrix/client/v3/sendToDevice/org.example.all/txn2", alice.AccessToken, map[string]any{
			"messages": map[string]any{bobID.String(): map[string]any{"*": map[string]string{"hello": "all"}}},
		}).Expect(t, 200, "")
		// MSC3202: the one-time key counts of a bridge user's device, and
		// the device lists of users sharing a room with the bridge's users.
		s.Do("PUT", userPath("/_matrix/client/v3/devices/TGBOBKEYS", bobID), tg.Reg.AppToken, map[string]any{}).Expect(t, 200, "")
		s.Do("POST", userPath("/_matrix/client/v3/keys/upload", bobID)+"&org.matrix.msc3202.device_id=TGBOBKEYS", tg.Reg.AppToken,
			map[string]any{"one_time_keys": map[string]string{"curve25519:AAAAAQ": "dGVzdCBrZXkgb25lIHRlc3Qga2V5IG9uZSB0ZXN0IGtleQ"}}).Expect(t, 200, "")
		s.Login(alice.UserID)
		want := map[string]bool{"m.typing": false, "m.receipt": false, "m.presence": false, "org.example.ping": false,
			"otk counts": false, "device lists": false, "org.example.all": false}
		tg.waitFor("typing, receipt, presence and to-device", 10*time.Second, func(txns []bridgeTxn) bool {
			for _, txn := range txns {
				var otk map[string]map[string]map[string]int
				_ = json.Unmarshal(txn.Raw["org.matrix.msc3202.device_one_time_keys_count"], &otk)
				want["otk counts"] = want["otk counts"] || otk[bobID.String()]["TGBOBKEYS"]["curve25519"] == 1
				var lists struct{ Changed []string }
				_ = json.Unmarshal(txn.Raw["org.matrix.msc3202.device_lists"], &lists)
				for _, u := range lists.Changed {
					want["device lists"] = want["device lists"] || u == alice.UserID.String()
				}
				for _, field := range []string{"ephemeral", "de.sorunome.msc2409.ephemeral", "to_device", "de.sorunome.msc2409.to_device"} {
					var evs []map[string]any
					_ = json.Unmarshal(txn.Raw[field], &evs)
					for _, e := range evs {
						typ, _ := e["type"].(string)
						switch typ {
						case "m.typing":
							want[typ] = want[typ] || (e["room_id"] == room.String() && strings.Contains(fmt.Sprint(e["content"]), alice.UserID.String()))
						case "m.receipt":
							want[typ] = want[typ] || (e["room_id"] == room.String() && strings.Contains(fmt.Sprint(e["content"]), evID.String()))
						case "m.presence":
							want[typ] = want[typ] || (e["sender"] == alice.UserID.String() && strings.Contains(fmt.Sprint(e["content"]), "at work"))
						case "org.example.all":
							want[typ] = want[typ] || (e["to_user_id"] == bobID.String() && e["to_device_id"] == "TGBOBSTAR")
						case "org.example.ping":
							want[typ] = want[typ] || (e["to_user_id"] == bobID.String() && e["to_device_id"] == "BOBDEVICE" && e["sender"] == alice.UserID.String())
						}
					}
				}
			}
			for _, ok := range want {
				if !ok {
					return false
				}
			}
			return true
		})
	})
}
