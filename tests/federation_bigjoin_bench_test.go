package tests

import (
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// BenchmarkFederationJoinLargeRoom measures joining, over federation, a
// room of 5 000 members and 20 000 state events: the time from the
// client's /join to its answer, the state and auth chain fetched, every
// signature checked and the room stored. The resident server is built by
// the test (bigRoomServer), so that only the joining server's work is
// measured. Each iteration joins from a fresh server.
func BenchmarkFederationJoinLargeRoom(b *testing.B) {
	const members, otherState = 5000, 15000
	room := newBigRoomServer(b, "big.fed.test", members, otherState)
	for _, engine := range []struct {
		name string
		url  func(testing.TB) string
	}{{"sqlite", storagetest.SQLiteURL}, {"postgres", storagetest.PostgresURL}} {
		b.Run(engine.name, func(b *testing.B) {
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				addr := freePort(b)
				f := startFederation(b, engine.url, []string{fedB}, func(cfg *config.Config) {
					cfg.Federation.AllowedServers = append(cfg.Federation.AllowedServers, room.name)
					cfg.Federation.ServerAddresses[room.name] = addr
				})
				room.serve(b, f.CA, addr)
				bob := f.Servers[fedB].Register("bob")
				start := time.Now()
				b.StartTimer()
				if _, err := bob.JoinRoom(ctx(), room.roomID, &mautrix.ReqJoinRoom{Via: []string{room.name}}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				took := time.Since(start)
				var joined mautrix.RespJoinedMembers
				if _, err := bob.MakeRequest(ctx(), "GET", bob.BuildClientURL("v3", "rooms", room.roomID, "joined_members"), nil, &joined); err != nil {
					b.Fatal(err)
				}
				if len(joined.Joined) != members+1 {
					b.Fatalf("after the join bob's server sees %d members, want %d", len(joined.Joined), members+1)
				}
				b.ReportMetric(took.Seconds(), "s/join")
			}
		})
	}
}

// bigRoomServer is a resident server made by the test: it holds one room
// of version 12, built and signed in memory, and answers what a joining
// server asks (keys, make_join, send_join); other requests get an empty
// success.
type bigRoomServer struct {
	name   string
	key    config.SigningKey
	roomID string
	// state is the room's current state, and authChain the auth events
	// of all of it.
	state, authChain []json.RawMessage
	// joinAuth are the auth events of a join; last and depth the newest
	// event.
	joinAuth []string
	last     string
	depth    int64
}

func newBigRoomServer(t testing.TB, name string, members, otherState int) *bigRoomServer {
	t.Helper()
	key, err := config.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	s := &bigRoomServer{name: name, key: key}
	admin := "@admin:" + name
	v := gomatrixserverlib.MustGetRoomVersion("12")
	build := func(sender, typ string, stateKey *string, content any, auth ...string) gomatrixserverlib.PDU {
		raw, err := json.Marshal(content)
		if err != nil {
			t.Fatal(err)
		}
		prevs := []string{}
		if auth == nil {
			auth = []string{}
		}
		if s.last != "" {
			prevs = []string{s.last}
		}
		s.depth++
		pdu, err := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
			SenderID: sender, RoomID: s.roomID, Type: typ, StateKey: stateKey, Content: raw,
			PrevEvents: prevs, AuthEvents: auth, Depth: s.depth,
		}).Build(time.Now(), spec.ServerName(name), gomatrixserverlib.KeyID(key.ID), key.Private)
		if err != nil {
			t.Fatalf("build %s: %v", typ, err)
		}
		s.last = pdu.EventID()
		s.state = append(s.state, pdu.JSON())
		return pdu
	}
	empty := ""
	create := build(admin, "m.room.create", &empty, map[string]any{"room_version": "12"})
	s.roomID = create.RoomID().String()
	adminJoin := build(admin, "m.room.member", &admin, map[string]string{"membership": "join"})
	pl := build(admin, "m.room.power_levels", &empty, map[string]any{"users": map[string]int{}, "state_default": 50, "events_default": 0}, adminJoin.EventID())
	jr := build(admin, "m.room.join_rules", &empty, map[string]string{"join_rule": "public"}, pl.EventID(), adminJoin.EventID())
	build(admin, "m.room.history_visibility", &empty, map[string]string{"history_visibility": "shared"}, pl.EventID(), adminJoin.EventID())
	for _, e := range []gomatrixserverlib.PDU{create, adminJoin, pl, jr} {
		s.authChain = append(s.authChain, e.JSON())
	}
	s.joinAuth = []string{pl.EventID(), jr.EventID()}
	for i := 1; i < members; i++ {
		user := fmt.Sprintf("@u%d:%s", i, name)
		build(user, "m.room.member", &user, map[string]string{"membership": "join"}, s.joinAuth...)
	}
	for i := 0; i < otherState; i++ {
		k := fmt.Sprintf("k%d", i)
		build(admin, "org.example.setting", &k, map[string]int{"n": i}, pl.EventID(), adminJoin.EventID())
	}
	return s
}

// serve answers federation requests for the room on addr, with a
// certificate from ca, until the test ends.
func (s *bigRoomServer) serve(t testing.TB, ca *testCA, addr string) {
	t.Helper()
	certFile, keyFile := ca.issue(t, t.TempDir(), s.name)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
}

func (s *bigRoomServer) handle(w http.ResponseWriter, r *http.Request) {
	var body any = map[string]any{}
	switch p := r.URL.Path; {
	case p == "/_matrix/key/v2/server":
		keys, err := s.serverKeys()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		body = json.RawMessage(keys)
	case strings.HasPrefix(p, "/_matrix/federation/v1/make_join/"):
		user, _ := strings.CutPrefix(p, "/_matrix/federation/v1/make_join/"+s.roomID+"/")
		body = map[string]any{"room_version": "12", "event": map[string]any{
			"type": "m.room.member", "state_key": user, "sender": user, "room_id": s.roomID,
			"content": map[string]string{"membership": "join"}, "prev_events": []string{s.last},
			"auth_events": s.joinAuth, "depth": s.depth + 1, "origin_server_ts": time.Now().UnixMilli(),
		}}
	case strings.HasPrefix(p, "/_matrix/federation/v2/send_join/"):
		var join json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&join); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = map[string]any{"origin": s.name, "state": s.state, "auth_chain": s.authChain, "event": join,
			"members_omitted": false, "servers_in_room": []string{s.name}}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// serverKeys is the server's signed /_matrix/key/v2/server answer.
func (s *bigRoomServer) serverKeys() ([]byte, error) {
	pub := s.key.Private.Public().(ed25519.PublicKey)
	keys, err := json.Marshal(map[string]any{
		"server_name":     s.name,
		"valid_until_ts":  time.Now().Add(24 * time.Hour).UnixMilli(),
		"verify_keys":     map[string]any{s.key.ID: map[string]string{"key": base64.RawStdEncoding.EncodeToString(pub)}},
		"old_verify_keys": map[string]any{},
	})
	if err != nil {
		return nil, err
	}
	return gomatrixserverlib.SignJSON(s.name, gomatrixserverlib.KeyID(s.key.ID), s.key.Private, keys)
}
