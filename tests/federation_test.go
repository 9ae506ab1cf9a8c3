package tests

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// Server names of the federation tests: loopback servers, reached
// through federation.server_addresses, with certificates for these names
// from the test's CA.
const (
	fedA = "a.fed.test"
	fedB = "b.fed.test"
	fedC = "c.fed.test"
)

// TestFederationJoinAndMessages: a room created on A, a user of B joins
// it over federation, and messages flow both ways into both sides' /sync.
func TestFederationJoinAndMessages(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, b := f.Servers[fedA], f.Servers[fedB]
		alice, bob := a.Register("alice"), b.Register("bob")
		room := createRoom(t, a, alice, map[string]any{"preset": "public_chat", "name": "Ministries"})
		sendText(t, alice, room, "before bob")

		aliceSync, _ := newSyncer(t, alice, "")
		bobSync, _ := newSyncer(t, bob, "")

		if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("bob joins over federation: %v", err)
		}
		// Bob's server has the room, its state included.
		bobSync.until("the joined room", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Join[room]; return ok })
		if name := stateContent(t, b, bob, room, "m.room.name", ""); name["name"] != "Ministries" {
			t.Fatalf("room name on B = %v", name)
		}
		// Alice sees bob join.
		aliceSync.until("bob's join", func(r *mautrix.RespSync) bool {
			return syncHasMember(r, room, bob.UserID, event.MembershipJoin)
		})

		sendText(t, alice, room, "from A")
		bobSync.until("alice's message", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), "from A") })
		sendText(t, bob, room, "from B")
		aliceSync.until("bob's message", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), "from B") })
		// State changes both ways: a topic set on A, bob leaving from B
		// and coming back, then banned from A.
		if _, err := alice.SendStateEvent(ctx(), room, event.StateTopic, "", map[string]string{"topic": "federated"}); err != nil {
			t.Fatal(err)
		}
		bobSync.until("the topic", func(*mautrix.RespSync) bool {
			r := b.Do("GET", roomPath(room, "state", "m.room.topic", ""), bob.AccessToken, nil)
			return r.Status == 200 && r.Body["topic"] == "federated"
		})
		if _, err := bob.LeaveRoom(ctx(), room); err != nil {
			t.Fatal(err)
		}
		aliceSync.until("bob's leave", func(r *mautrix.RespSync) bool { return syncHasMember(r, room, bob.UserID, event.MembershipLeave) })
		if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("bob joins again: %v", err)
		}
		aliceSync.until("bob's second join", func(r *mautrix.RespSync) bool { return syncHasMember(r, room, bob.UserID, event.MembershipJoin) })
		sendText(t, bob, room, "back")
		aliceSync.until("bob's message after his return", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), "back") })
		// Both servers agree on who is in the room.
		for _, s := range []struct {
			srv *Server
			c   *mautrix.Client
		}{{a, alice}, {b, bob}} {
			members, err := s.c.JoinedMembers(ctx(), room)
			if err != nil {
				t.Fatal(err)
			}
			if len(members.Joined) != 2 {
				t.Errorf("%s sees %d joined members, want 2", s.c.UserID, len(members.Joined))
			}
		}
	})
}

// hasMember reports whether resp's timeline or state of room holds a
// membership event of user.
func syncHasMember(resp *mautrix.RespSync, room id.RoomID, user id.UserID, m event.Membership) bool {
	jr, ok := resp.Rooms.Join[room]
	if !ok {
		return false
	}
	for _, evs := range [][]*event.Event{jr.Timeline.Events, jr.State.Events} {
		parseAll(evs)
		for _, e := range evs {
			if e.Type == event.StateMember && e.StateKey != nil && *e.StateKey == user.String() && e.Content.AsMember().Membership == m {
				return true
			}
		}
	}
	return false
}

// TestFederationRefusals: requests without a signature, with a wrong
// one, and from a server off the allow-list are refused; a join through
// a server off the list is never attempted.
func TestFederationRefusals(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	_, forged, _ := ed25519.GenerateKey(rand.Reader)
	path := "/_matrix/federation/v1/state_ids/!nope:a.fed.test?event_id=%24x"

	// No signature at all.
	if status, body := f.fedRequest(t, fedA, fedB, fedA, "GET", path, nil, "", nil); status != 401 || body["errcode"] != "M_UNAUTHORIZED" {
		t.Errorf("unsigned request: %d %v", status, body)
	}
	// Signed by B's name with a key that is not B's.
	if status, body := f.fedRequest(t, fedA, fedB, fedA, "GET", path, nil, "ed25519:forged", forged); status != 401 || body["errcode"] != "M_UNAUTHORIZED" {
		t.Errorf("wrongly signed request: %d %v", status, body)
	}
	// Addressed to another server.
	if status, body := f.fedRequest(t, fedA, fedB, fedC, "GET", path, nil, "ed25519:forged", forged); status != 401 || body["errcode"] != "M_UNAUTHORIZED" {
		t.Errorf("request for another destination: %d %v", status, body)
	}
	// C is not on A's list.
	if status, body := f.fedRequest(t, fedA, fedC, fedA, "GET", path, nil, "ed25519:c", forged); status != 403 || body["errcode"] != "M_FORBIDDEN" {
		t.Errorf("request from a server off the list: %d %v", status, body)
	}
	// The key endpoints and /version need no signature.
	if status, body := f.fedRequest(t, fedA, fedB, fedA, "GET", "/_matrix/federation/v1/version", nil, "", nil); status != 200 {
		t.Errorf("version: %d %v", status, body)
	}

	// Outbound: A never asks C (off its list) to let alice in.
	alice := f.Servers[fedA].Register("alice")
	_, err := alice.JoinRoom(ctx(), "!room:"+fedC, &mautrix.ReqJoinRoom{Via: []string{fedC}})
	if errcode(err) != "M_NOT_FOUND" {
		t.Errorf("join through a server off the list: %v", err)
	}
}

// TestFederationSendTransaction: B's transactions as A receives them:
// per-PDU results, a bad signature refused, a bad content hash redacted,
// the same transaction answered the same way twice, the spec's limits.
func TestFederationSendTransaction(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
	if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
		t.Fatal(err)
	}
	bobJoin := stateEventID(t, a, alice, room, "m.room.member", bob.UserID.String())
	pl := stateEventID(t, a, alice, room, "m.room.power_levels", "")
	key := f.signingKey(t, fedB)
	msg := func(body string, k config.SigningKey) gomatrixserverlib.PDU {
		return buildPDU(t, fedB, k, room, bob.UserID, "m.room.message", nil,
			map[string]string{"msgtype": "m.text", "body": body}, []string{bobJoin}, []string{pl, bobJoin})
	}
	good := msg("good", key)
	tamperedPDU := msg("original", key)
	var tampered map[string]any
	if err := json.Unmarshal(tamperedPDU.JSON(), &tampered); err != nil {
		t.Fatal(err)
	}
	tampered["content"].(map[string]any)["body"] = "tampered"
	forgedKey, err := config.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	forged := msg("forged", forgedKey)
	unknownRoom := buildPDU(t, fedB, key, "!unknown", bob.UserID, "m.room.message", nil, map[string]string{"body": "x"}, []string{bobJoin}, nil)

	txn := map[string]any{"origin": fedB, "origin_server_ts": time.Now().UnixMilli(),
		"pdus": []any{json.RawMessage(good.JSON()), tampered, json.RawMessage(forged.JSON()), json.RawMessage(unknownRoom.JSON())}}
	status, body := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/txn1", txn)
	if status != 200 {
		t.Fatalf("send: %d %v", status, body)
	}
	results, _ := body["pdus"].(map[string]any)
	errorOf := func(eventID string) (string, bool) {
		r, ok := results[eventID].(map[string]any)
		if !ok {
			return "", false
		}
		e, _ := r["error"].(string)
		return e, true
	}
	if e, ok := errorOf(good.EventID()); !ok || e != "" {
		t.Errorf("good PDU: %q (present %v)", e, ok)
	}
	if e, ok := errorOf(tamperedPDU.EventID()); !ok || e != "" {
		t.Errorf("PDU with a bad content hash: %q (present %v); want accepted, redacted", e, ok)
	}
	if e, _ := errorOf(forged.EventID()); !strings.Contains(e, "signature") {
		t.Errorf("forged PDU: %q, want a signature error", e)
	}
	if _, ok := errorOf(unknownRoom.EventID()); ok {
		t.Errorf("a PDU of an unknown room has a result")
	}
	// The tampered event is kept redacted; the good one as sent.
	r := a.Do("GET", roomPath(room, "event", tamperedPDU.EventID()), alice.AccessToken, nil).Expect(t, 200, "")
	if c, _ := r.Body["content"].(map[string]any); len(c) != 0 {
		t.Errorf("tampered event content = %v, want redacted", c)
	}
	r = a.Do("GET", roomPath(room, "event", good.EventID()), alice.AccessToken, nil).Expect(t, 200, "")
	if c, _ := r.Body["content"].(map[string]any); c["body"] != "good" {
		t.Errorf("good event content = %v", c)
	}
	a.Do("GET", roomPath(room, "event", forged.EventID()), alice.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")

	// The same transaction again: the same answer, nothing done twice.
	status2, body2 := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/txn1", map[string]any{"origin": fedB, "pdus": []any{}})
	if status2 != 200 || !reflect.DeepEqual(body2, body) {
		t.Errorf("repeated transaction: %d %v, want %v", status2, body2, body)
	}

	// Limits: 51 PDUs, 101 EDUs.
	many := make([]any, 51)
	for i := range many {
		many[i] = json.RawMessage(good.JSON())
	}
	if status, body := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/txn2", map[string]any{"origin": fedB, "pdus": many}); status != 400 {
		t.Errorf("51 PDUs: %d %v", status, body)
	}
	edus := make([]any, 101)
	for i := range edus {
		edus[i] = map[string]any{"edu_type": "m.typing", "content": map[string]any{}}
	}
	if status, body := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/txn3", map[string]any{"origin": fedB, "pdus": []any{}, "edus": edus}); status != 400 {
		t.Errorf("101 EDUs: %d %v", status, body)
	}
	// Another server's transaction of the same id is its own.
	if status, body := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/txn4", map[string]any{"origin": fedA, "pdus": []any{}}); status != 400 {
		t.Errorf("a transaction claiming another origin: %d %v", status, body)
	}
}

// TestFederationQueueSurvivesDowntime: with B down, A's messages still
// reach C at once (a dead server holds up nobody), and reach B once it
// is back, A having restarted meanwhile (the queue is on disk).
func TestFederationQueueSurvivesDowntime(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for retries")
	}
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB, fedC}, nil)
	a, b, c := f.Servers[fedA], f.Servers[fedB], f.Servers[fedC]
	alice, bob, carol := a.Register("alice"), b.Register("bob"), c.Register("carol")
	room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
	for _, u := range []*mautrix.Client{bob, carol} {
		if _, err := u.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("%s joins: %v", u.UserID, err)
		}
	}
	bobSync, _ := newSyncer(t, bob, "")
	carolSync, _ := newSyncer(t, carol, "")

	b.Stop()
	sendText(t, alice, room, "while B is down")
	carolSync.until("the message sent while B is down", func(r *mautrix.RespSync) bool {
		return slices.Contains(timelineBodies(r, room), "while B is down")
	})
	a.Restart()
	sendText(t, alice, room, "after A restarted")
	carolSync.until("the message sent after A restarted", func(r *mautrix.RespSync) bool {
		return slices.Contains(timelineBodies(r, room), "after A restarted")
	})
	b.Restart()
	// A retries B with a growing backoff: give it time.
	var got []string
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) && !(slices.Contains(got, "while B is down") && slices.Contains(got, "after A restarted")) {
		got = append(got, timelineBodies(bobSync.next(2*time.Second), room)...)
	}
	if !slices.Contains(got, "while B is down") || !slices.Contains(got, "after A restarted") {
		t.Fatalf("B got %q after coming back", got)
	}
	if i, j := slices.Index(got, "while B is down"), slices.Index(got, "after A restarted"); i > j {
		t.Errorf("B got the messages out of order: %q", got)
	}
}

// TestFederationReadEndpoints: what a server in the room may read of it
// (event, state, auth chains, backfill, missing events), refused to a
// server that is not in it; a partial-state join (omit_members, as
// Synapse asks by default) made as B would make it.
func TestFederationReadEndpoints(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB, fedC}, nil)
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	room := createRoom(t, a, alice, map[string]any{"preset": "public_chat", "name": "Read"})
	if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for i := 0; i < 3; i++ {
		msgs = append(msgs, sendText(t, alice, room, fmt.Sprintf("m%d", i)).String())
	}
	v1 := "/_matrix/federation/v1"
	esc := url.PathEscape(room.String())

	status, body := f.asServer(t, fedA, fedB, "GET", v1+"/event/"+url.PathEscape(msgs[2]), nil)
	if pdus, _ := body["pdus"].([]any); status != 200 || len(pdus) != 1 {
		t.Fatalf("event: %d %v", status, body)
	}
	status, body = f.asServer(t, fedA, fedB, "GET", v1+"/state_ids/"+esc+"?event_id="+url.QueryEscape(msgs[0]), nil)
	if ids, _ := body["pdu_ids"].([]any); status != 200 || len(ids) < 5 {
		t.Fatalf("state_ids: %d %v", status, body)
	}
	status, body = f.asServer(t, fedA, fedB, "GET", v1+"/state/"+esc+"?event_id="+url.QueryEscape(msgs[0]), nil)
	if pdus, _ := body["pdus"].([]any); status != 200 || len(pdus) < 5 {
		t.Fatalf("state: %d %v", status, body)
	}
	status, body = f.asServer(t, fedA, fedB, "GET", v1+"/event_auth/"+esc+"/"+url.PathEscape(msgs[0]), nil)
	if chain, _ := body["auth_chain"].([]any); status != 200 || len(chain) < 3 {
		t.Fatalf("event_auth: %d %v", status, body)
	}
	status, body = f.asServer(t, fedA, fedB, "GET", v1+"/backfill/"+esc+"?v="+url.QueryEscape(msgs[2])+"&limit=2", nil)
	if pdus, _ := body["pdus"].([]any); status != 200 || len(pdus) != 2 {
		t.Fatalf("backfill: %d %v", status, body)
	}
	status, body = f.asServer(t, fedA, fedB, "POST", v1+"/get_missing_events/"+esc,
		map[string]any{"limit": 10, "earliest_events": []string{msgs[0]}, "latest_events": []string{msgs[2]}})
	if evs, _ := body["events"].([]any); status != 200 || len(evs) != 1 {
		t.Fatalf("get_missing_events: %d %v", status, body)
	} else if id := eventIDOf(t, evs[0]); id != msgs[1] {
		t.Errorf("missing event = %s, want %s", id, msgs[1])
	}

	// C federates with A but is not in the room.
	for _, path := range []string{
		v1 + "/event/" + url.PathEscape(msgs[2]),
		v1 + "/state_ids/" + esc + "?event_id=" + url.QueryEscape(msgs[0]),
		v1 + "/backfill/" + esc + "?v=" + url.QueryEscape(msgs[2]) + "&limit=2",
	} {
		if status, body := f.asServer(t, fedA, fedC, "GET", path, nil); status != 403 || body["errcode"] != "M_FORBIDDEN" {
			t.Errorf("%s for a server not in the room: %d %v", path, status, body)
		}
	}

	// A partial-state join as Synapse makes it: make_join, then
	// send_join with omit_members=true.
	dave := "@dave:" + fedB
	status, body = f.asServer(t, fedA, fedB, "GET", v1+"/make_join/"+esc+"/"+url.PathEscape(dave)+"?ver=11&ver=12", nil)
	if status != 200 || body["room_version"] != "12" {
		t.Fatalf("make_join: %d %v", status, body)
	}
	if status, body := f.asServer(t, fedA, fedB, "GET", v1+"/make_join/"+esc+"/"+url.PathEscape(dave)+"?ver=10", nil); status != 400 || body["errcode"] != "M_INCOMPATIBLE_ROOM_VERSION" {
		t.Errorf("make_join without the room's version: %d %v", status, body)
	}
	if status, body := f.asServer(t, fedA, fedB, "GET", v1+"/make_join/"+esc+"/"+url.PathEscape("@eve:"+fedC)+"?ver=12", nil); status != 403 {
		t.Errorf("make_join for another server's user: %d %v", status, body)
	}
	raw, _ := json.Marshal(body["event"])
	var proto gomatrixserverlib.ProtoEvent
	if err := json.Unmarshal(raw, &proto); err != nil {
		t.Fatal(err)
	}
	key := f.signingKey(t, fedB)
	join, err := gomatrixserverlib.MustGetRoomVersion("12").NewEventBuilderFromProtoEvent(&proto).
		Build(time.Now(), fedB, gomatrixserverlib.KeyID(key.ID), key.Private)
	if err != nil {
		t.Fatal(err)
	}
	status, body = f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v2/send_join/"+esc+"/"+url.PathEscape(join.EventID())+"?omit_members=true", json.RawMessage(join.JSON()))
	if status != 200 || body["members_omitted"] != true {
		t.Fatalf("send_join: %d %v", status, body)
	}
	state, _ := body["state"].([]any)
	for _, e := range state {
		if m, _ := e.(map[string]any); m["type"] == "m.room.member" {
			t.Errorf("a member event in the partial state: %v", m["state_key"])
		}
	}
	if servers, _ := body["servers_in_room"].([]any); !slices.Contains(servers, any(fedA)) || !slices.Contains(servers, any(fedB)) {
		t.Errorf("servers_in_room = %v", servers)
	}
	if signed, _ := body["event"].(map[string]any); signed["signatures"].(map[string]any)[fedA] == nil {
		t.Errorf("the returned join is not signed by A: %v", signed["signatures"])
	}
	members, err := alice.JoinedMembers(ctx(), room)
	if err != nil || len(members.Joined) != 3 {
		t.Errorf("joined members on A after dave's join: %v %v", members, err)
	}
}

// eventIDOf computes the id of a room version 12 event given as JSON.
func eventIDOf(t testing.TB, ev any) string {
	t.Helper()
	raw, _ := json.Marshal(ev)
	pdu, err := gomatrixserverlib.MustGetRoomVersion("12").NewEventFromTrustedJSON(raw, false)
	if err != nil {
		t.Fatal(err)
	}
	return pdu.EventID()
}

// TestFederationBan: a ban of a remote user reaches that user's server,
// which then refuses the user's messages itself.
func TestFederationBan(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
	if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
		t.Fatal(err)
	}
	bobSync, _ := newSyncer(t, bob, "")
	if _, err := alice.BanUser(ctx(), room, &mautrix.ReqBanUser{UserID: bob.UserID, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	bobSync.until("bob's ban", func(r *mautrix.RespSync) bool {
		lr, ok := r.Rooms.Leave[room]
		if !ok {
			return false
		}
		for _, e := range lr.Timeline.Events {
			_ = e.Content.ParseRaw(e.Type)
			if e.Type == event.StateMember && e.StateKey != nil && *e.StateKey == bob.UserID.String() && e.Content.AsMember().Membership == event.MembershipBan {
				return true
			}
		}
		return false
	})
	if _, err := bob.SendText(ctx(), room, "still here?"); errcode(err) != "M_FORBIDDEN" {
		t.Errorf("a banned user's message on his own server: %v", err)
	}
}

// TestFederationInvite: alice (A) invites bob (B) to a private room; bob
// sees the invite with the room's name, joins with no via (through the
// inviter's server), and they talk.
func TestFederationInvite(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB, fedC}, func(cfg *config.Config) {
		if cfg.Global.ServerName == fedA {
			cfg.Federation.AllowedServers = []string{fedB} // not C
		}
	})
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	room := createRoom(t, a, alice, map[string]any{"preset": "private_chat", "name": "Secret"})
	bobSync, _ := newSyncer(t, bob, "")
	aliceSync, _ := newSyncer(t, alice, "")

	if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("invite bob: %v", err)
	}
	resp := bobSync.until("the invite", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Invite[room]; return ok })
	var name string
	for _, e := range resp.Rooms.Invite[room].State.Events {
		_ = e.Content.ParseRaw(e.Type)
		if e.Type == event.StateRoomName {
			name = e.Content.AsRoomName().Name
		}
	}
	if name != "Secret" {
		t.Errorf("invite state has room name %q", name)
	}
	if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
		t.Fatalf("bob accepts: %v", err)
	}
	// The sync that brings the joined room carries its state, although
	// its timeline starts at the invite, from before B had the room.
	joined := bobSync.until("the joined room", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Join[room]; return ok })
	hasName := false
	for _, e := range joined.Rooms.Join[room].State.Events {
		hasName = hasName || e.Type == event.StateRoomName
	}
	if !hasName {
		t.Errorf("bob's sync of the joined room has no m.room.name in its state")
	}
	aliceSync.until("bob's join", func(r *mautrix.RespSync) bool { return syncHasMember(r, room, bob.UserID, event.MembershipJoin) })
	sendText(t, bob, room, "thanks")
	aliceSync.until("bob's message", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), "thanks") })

	// An invite rejected from B: make_leave and send_leave through A.
	other := createRoom(t, a, alice, map[string]any{"preset": "private_chat", "name": "Declined"})
	if _, err := alice.InviteUser(ctx(), other, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("second invite: %v", err)
	}
	bobSync.until("the second invite", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Invite[other]; return ok })
	if _, err := bob.LeaveRoom(ctx(), other); err != nil {
		t.Fatalf("bob rejects the invite: %v", err)
	}
	aliceSync.until("bob's rejection", func(r *mautrix.RespSync) bool { return syncHasMember(r, other, bob.UserID, event.MembershipLeave) })
	bobSync.until("the rejected room among bob's left rooms", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Leave[other]; return ok })

	// createRoom with a user of B in its invite list (a direct chat, as
	// Element starts one): the invite reaches B, is_direct kept, and the
	// invitee gets the creators' power of trusted_private_chat.
	dm := createRoom(t, a, alice, map[string]any{"preset": "trusted_private_chat", "is_direct": true, "invite": []string{bob.UserID.String()}})
	resp = bobSync.until("the direct chat's invite", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Invite[dm]; return ok })
	direct := false
	for _, e := range resp.Rooms.Invite[dm].State.Events {
		_ = e.Content.ParseRaw(e.Type)
		if e.Type == event.StateMember && e.GetStateKey() == bob.UserID.String() {
			direct = e.Content.AsMember().IsDirect
		}
	}
	if !direct {
		t.Errorf("the direct chat's invite lacks is_direct")
	}
	if _, err := bob.JoinRoomByID(ctx(), dm); err != nil {
		t.Fatalf("bob accepts the direct chat: %v", err)
	}
	sendText(t, bob, dm, "hello from B")
	aliceSync.until("bob's message in the direct chat", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, dm), "hello from B") })

	// C is off A's list: no invite is sent there.
	if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: id.UserID("@carol:" + fedC)}); errcode(err) != "M_FORBIDDEN" {
		t.Errorf("invite to a server off the list: %v", err)
	}
}

// TestFederationMedia: a file uploaded on A is downloaded by a user of B
// through B (B fetches it over federation, signed); a server off A's
// list gets nothing.
func TestFederationMedia(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	data := []byte("ministry memo")
	uri := upload(t, alice, data, "text/plain", "memo.txt")
	r := b.mediaDo("GET", downloadPath(uri), bob.AccessToken, nil).expect(t, 200, "")
	if !bytes.Equal(r.Body, data) || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("remote download: %q %q", r.Body, r.Header.Get("Content-Type"))
	}
	b.mediaDo("GET", "/_matrix/client/v1/media/download/"+fedA+"/nope", bob.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")
	// Unsigned, the federation endpoint refuses.
	if status, _ := f.fedRequest(t, fedA, fedB, fedA, "GET", "/_matrix/federation/v1/media/download/"+uri.FileID, nil, "", nil); status != 401 {
		t.Errorf("unsigned media download: %d", status)
	}
	if status, _ := f.fedRequest(t, fedA, fedC, fedA, "GET", "/_matrix/federation/v1/media/download/"+uri.FileID, nil, "ed25519:x", f.signingKey(t, fedB).Private); status != 403 {
		t.Errorf("media download by a server off the list: %d", status)
	}
}

// TestFederationHistoryVisibility: in a room whose history is visible to
// members only since they joined, a server whose users joined later gets
// the earlier messages redacted (event, backfill), and later ones whole.
func TestFederationHistoryVisibility(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	room := createRoom(t, a, alice, map[string]any{"preset": "public_chat", "initial_state": []any{
		map[string]any{"type": "m.room.history_visibility", "state_key": "", "content": map[string]string{"history_visibility": "joined"}},
	}})
	before := sendText(t, alice, room, "before bob").String()
	if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
		t.Fatal(err)
	}
	after := sendText(t, alice, room, "after bob").String()
	bodyOf := func(pdu any) any {
		c, _ := pdu.(map[string]any)["content"].(map[string]any)
		return c["body"]
	}
	v1 := "/_matrix/federation/v1"
	_, body := f.asServer(t, fedA, fedB, "GET", v1+"/event/"+url.PathEscape(before), nil)
	if pdus, _ := body["pdus"].([]any); len(pdus) != 1 || bodyOf(pdus[0]) != nil {
		t.Errorf("an event from before B's users joined: %v", body)
	}
	_, body = f.asServer(t, fedA, fedB, "GET", v1+"/event/"+url.PathEscape(after), nil)
	if pdus, _ := body["pdus"].([]any); len(pdus) != 1 || bodyOf(pdus[0]) != "after bob" {
		t.Errorf("an event from after B's users joined: %v", body)
	}
	_, body = f.asServer(t, fedA, fedB, "GET", v1+"/backfill/"+url.PathEscape(room.String())+"?v="+url.QueryEscape(after)+"&limit=20", nil)
	pdus, _ := body["pdus"].([]any)
	var bodies []any
	for _, p := range pdus {
		if b := bodyOf(p); b != nil {
			bodies = append(bodies, b)
		}
	}
	if len(pdus) < 3 || !slices.Equal(bodies, []any{"after bob"}) {
		t.Errorf("backfill: %d events, readable bodies %v", len(pdus), bodies)
	}
	// The state and auth chain at an event hidden from B are refused;
	// at one it may see, given.
	esc := url.PathEscape(room.String())
	for _, path := range []string{"/state_ids/" + esc + "?event_id=", "/state/" + esc + "?event_id=", "/event_auth/" + esc + "/"} {
		if status, body := f.asServer(t, fedA, fedB, "GET", v1+path+url.QueryEscape(before), nil); status != 403 || body["errcode"] != "M_FORBIDDEN" {
			t.Errorf("%s at an event hidden from B: %d %v", path, status, body)
		}
		if status, body := f.asServer(t, fedA, fedB, "GET", v1+path+url.QueryEscape(after), nil); status != 200 {
			t.Errorf("%s at an event B may see: %d %v", path, status, body)
		}
	}
}

// TestFederationDirectory: another server resolves our aliases (for its
// clients too, who join by them), reads our public room list, and finds
// events by time.
func TestFederationDirectory(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	room := createRoom(t, a, alice, map[string]any{"preset": "public_chat", "room_alias_name": "gov", "visibility": "public", "name": "Gov"})
	v1 := "/_matrix/federation/v1"
	status, body := f.asServer(t, fedA, fedB, "GET", v1+"/query/directory?room_alias="+url.QueryEscape("#gov:"+fedA), nil)
	if status != 200 || body["room_id"] != room.String() || !reflect.DeepEqual(body["servers"], []any{fedA}) {
		t.Errorf("query/directory: %d %v", status, body)
	}
	if status, body := f.asServer(t, fedA, fedB, "GET", v1+"/query/directory?room_alias="+url.QueryEscape("#nope:"+fedA), nil); status != 404 {
		t.Errorf("unknown alias: %d %v", status, body)
	}
	for _, method := range []string{"GET", "POST"} {
		var content any
		if method == "POST" {
			content = map[string]any{"limit": 10, "filter": map[string]any{"generic_search_term": "gov"}}
		}
		status, body := f.asServer(t, fedA, fedB, method, v1+"/publicRooms", content)
		chunk, _ := body["chunk"].([]any)
		if status != 200 || len(chunk) != 1 || chunk[0].(map[string]any)["name"] != "Gov" {
			t.Errorf("%s publicRooms: %d %v", method, status, body)
		}
	}
	// timestamp_to_event: for servers in the room only.
	msg := sendText(t, alice, room, "noon")
	time.Sleep(5 * time.Millisecond)
	path := v1 + "/timestamp_to_event/" + url.PathEscape(room.String()) + "?dir=b&ts=" + fmt.Sprint(time.Now().UnixMilli())
	if status, _ := f.asServer(t, fedA, fedB, "GET", path, nil); status != 403 {
		t.Errorf("timestamp_to_event before joining: %d", status)
	}
	// Bob's client resolves the alias through B, which asks A; an alias A
	// does not know is not found, one of a server B does not federate
	// with is refused.
	r := b.Do("GET", "/_matrix/client/v3/directory/room/"+url.PathEscape("#gov:"+fedA), bob.AccessToken, nil).Expect(t, 200, "")
	if r.Body["room_id"] != room.String() || !reflect.DeepEqual(r.Body["servers"], []any{fedA}) {
		t.Errorf("bob resolves #gov:%s: %s", fedA, r.Raw)
	}
	b.Do("GET", "/_matrix/client/v3/directory/room/"+url.PathEscape("#nope:"+fedA), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
	b.Do("GET", "/_matrix/client/v3/directory/room/"+url.PathEscape("#gov:"+fedC), bob.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
	b.Do("POST", "/_matrix/client/v3/join/"+url.PathEscape("#nope:"+fedA), bob.AccessToken, map[string]any{}).Expect(t, 404, "M_NOT_FOUND")
	// Bob's client lists A's public rooms through B, with and without a
	// search term; a server B does not federate with is refused.
	for _, tc := range []struct {
		method string
		body   any
		names  []any
	}{
		{"GET", nil, []any{"Gov"}},
		{"POST", map[string]any{"filter": map[string]any{"generic_search_term": "gov"}}, []any{"Gov"}},
		{"POST", map[string]any{"filter": map[string]any{"generic_search_term": "nothing like it"}}, nil},
	} {
		r := b.Do(tc.method, "/_matrix/client/v3/publicRooms?server="+fedA, bob.AccessToken, tc.body).Expect(t, 200, "")
		var names []any
		for _, e := range r.Body["chunk"].([]any) {
			names = append(names, e.(map[string]any)["name"])
		}
		if !reflect.DeepEqual(names, tc.names) {
			t.Errorf("%s publicRooms of %s %v: %s", tc.method, fedA, tc.body, r.Raw)
		}
	}
	b.Do("GET", "/_matrix/client/v3/publicRooms?server="+fedC, bob.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
	// Bob previews the room before joining (room_summary), by alias or
	// by id with a server to ask; a private room is not described.
	for _, path := range []string{url.PathEscape("#gov:" + fedA), url.PathEscape(room.String()) + "?via=" + fedA} {
		r := b.Do("GET", "/_matrix/client/v1/room_summary/"+path, bob.AccessToken, nil).Expect(t, 200, "")
		if r.Body["room_id"] != room.String() || r.Body["name"] != "Gov" || r.Body["join_rule"] != "public" ||
			r.Body["num_joined_members"] != float64(1) || r.Body["room_version"] != "12" {
			t.Errorf("bob's summary of A's room by %s: %s", path, r.Raw)
		}
	}
	private := createRoom(t, a, alice, map[string]any{"preset": "private_chat", "name": "Private"})
	b.Do("GET", "/_matrix/client/v1/room_summary/"+url.PathEscape(private.String())+"?via="+fedA, bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
	// Bob joins by the alias alone: A is the server to join through.
	if resp, err := bob.JoinRoom(ctx(), "#gov:"+fedA, nil); err != nil || resp.RoomID != room {
		t.Fatalf("bob joins by alias: %v %v", resp, err)
	}
	if status, body := f.asServer(t, fedA, fedB, "GET", path, nil); status != 200 || body["event_id"] != msg.String() {
		t.Errorf("timestamp_to_event: %d %v, want %s", status, body, msg)
	}
}

// TestFederationTypingAndReceipts: alice (A) typing shows in bob's (B)
// sync, and bob's read receipt in alice's, through m.typing and
// m.receipt EDUs; a server cannot speak for another's users.
func TestFederationTypingAndReceipts(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, b := f.Servers[fedA], f.Servers[fedB]
		alice, bob := a.Register("alice"), b.Register("bob")
		room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
		aliceSync, _ := newSyncer(t, alice, "")
		bobSync, _ := newSyncer(t, bob, "")
		if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("bob joins over federation: %v", err)
		}
		bobSync.until("the joined room", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Join[room]; return ok })

		ephemeral := func(r *mautrix.RespSync, typ event.Type) []*event.Event {
			var out []*event.Event
			if jr, ok := r.Rooms.Join[room]; ok {
				for _, e := range jr.Ephemeral.Events {
					if e.Type == typ {
						out = append(out, e)
					}
				}
			}
			return out
		}
		if _, err := alice.UserTyping(ctx(), room, true, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		bobSync.until("alice typing", func(r *mautrix.RespSync) bool {
			for _, e := range ephemeral(r, event.EphemeralEventTyping) {
				_ = e.Content.ParseRaw(e.Type)
				if slices.Contains(e.Content.AsTyping().UserIDs, alice.UserID) {
					return true
				}
			}
			return false
		})

		msg := sendText(t, alice, room, "read me")
		bobSync.until("alice's message", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), "read me") })
		if err := bob.SendReceipt(ctx(), room, msg, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		aliceSync.until("bob's receipt", func(r *mautrix.RespSync) bool {
			for _, e := range ephemeral(r, event.EphemeralEventReceipt) {
				_ = e.Content.ParseRaw(e.Type)
				if _, ok := (*e.Content.AsReceipt())[msg][event.ReceiptTypeRead][bob.UserID]; ok {
					return true
				}
			}
			return false
		})

		// B may not speak for A's users: a typing EDU from B for alice is
		// dropped.
		if _, err := alice.UserTyping(ctx(), room, false, 0); err != nil {
			t.Fatal(err)
		}
		status, _ := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/forged-typing", map[string]any{
			"origin": fedB, "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{},
			"edus": []any{map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": room, "user_id": alice.UserID, "typing": true}}},
		})
		if status != 200 {
			t.Fatalf("transaction with a forged typing EDU: %d", status)
		}
		time.Sleep(300 * time.Millisecond)
		full, err := alice.SyncRequest(ctx(), 0, "", "", true, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ephemeral(full, event.EphemeralEventTyping) {
			_ = e.Content.ParseRaw(e.Type)
			if users := e.Content.AsTyping().UserIDs; len(users) != 0 {
				t.Errorf("a typing EDU from B for a user of A was taken: typing %v", users)
			}
		}
	})
}

// TestFederationProfile: a user of B reads the profile of a user of A
// through B, which asks A (/query/profile); a user A does not have is 404.
func TestFederationProfile(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	if err := alice.SetDisplayName(ctx(), "Alice of A"); err != nil {
		t.Fatal(err)
	}
	r := b.Do("GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID.String()), bob.AccessToken, nil).Expect(t, 200, "")
	if r.Body["displayname"] != "Alice of A" {
		t.Errorf("alice's profile seen from B = %v", r.Body)
	}
	r = b.Do("GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID.String())+"/displayname", bob.AccessToken, nil).Expect(t, 200, "")
	if r.Body["displayname"] != "Alice of A" {
		t.Errorf("alice's display name seen from B = %v", r.Body)
	}
	b.Do("GET", "/_matrix/client/v3/profile/"+url.PathEscape("@nobody:"+fedA), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
	b.Do("GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID.String())+"/avatar_url", bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
	// Over federation directly, a user of another server is refused.
	if status, _ := f.asServer(t, fedA, fedB, "GET", "/_matrix/federation/v1/query/profile?user_id="+url.QueryEscape(bob.UserID.String()), nil); status != 400 {
		t.Errorf("/query/profile for a user of another server = %d, want 400", status)
	}
}

// TestFederationServerACL: a room whose m.room.server_acl leaves B out
// refuses B's join and its requests about the room; B's users cannot
// join through A.
func TestFederationServerACL(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
	// A closed federation's rooms carry its allow-list as their ACL.
	if acl := stateContent(t, a, alice, room, "m.room.server_acl", ""); fmt.Sprint(acl["allow"]) != fmt.Sprint([]any{fedA, fedB}) {
		t.Errorf("a new room's server ACL = %v, want allow [%s %s]", acl, fedA, fedB)
	}
	makeJoin := "/_matrix/federation/v1/make_join/" + url.PathEscape(room.String()) + "/" + url.PathEscape(bob.UserID.String()) + "?ver=12"
	if status, _ := f.asServer(t, fedA, fedB, "GET", makeJoin, nil); status != 200 {
		t.Fatalf("make_join before the ACL = %d, want 200", status)
	}
	if _, err := alice.SendStateEvent(ctx(), room, event.NewEventType("m.room.server_acl"), "", map[string]any{"allow": []string{fedA}, "deny": []string{}}); err != nil {
		t.Fatal(err)
	}
	if status, body := f.asServer(t, fedA, fedB, "GET", makeJoin, nil); status != 403 || body["errcode"] != "M_FORBIDDEN" {
		t.Errorf("make_join from a server the ACL denies = %d %v, want 403 M_FORBIDDEN", status, body)
	}
	if status, _ := f.asServer(t, fedA, fedB, "GET", "/_matrix/federation/v1/backfill/"+url.PathEscape(room.String())+"?limit=5&v=x", nil); status != 403 {
		t.Errorf("backfill from a server the ACL denies = %d, want 403", status)
	}
	if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err == nil {
		t.Errorf("bob joined a room whose ACL denies his server")
	}
}

// TestFederationOriginRateLimit: beyond its burst, an origin's signed
// requests get 429 M_LIMIT_EXCEEDED with a retry delay; another origin
// is not held up.
func TestFederationOriginRateLimit(t *testing.T) {
	t.Parallel()
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB, fedC}, func(cfg *config.Config) {
		cfg.Federation.OriginRateLimit = config.RateLimit{PerSecond: 0.01, Burst: 3}
	})
	path := "/_matrix/federation/v1/query/directory?room_alias=" + url.QueryEscape("#nowhere:"+fedA)
	for i := range 3 {
		if status, _ := f.asServer(t, fedA, fedB, "GET", path, nil); status == 429 {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	status, body := f.asServer(t, fedA, fedB, "GET", path, nil)
	if status != 429 || body["errcode"] != "M_LIMIT_EXCEEDED" || body["retry_after_ms"] == nil {
		t.Errorf("request past the burst = %d %v, want 429 M_LIMIT_EXCEEDED with retry_after_ms", status, body)
	}
	if status, _ := f.asServer(t, fedA, fedC, "GET", path, nil); status == 429 {
		t.Errorf("another origin was limited too")
	}
}
