package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// knockRoomState is the initial state of a room one may knock on.
var knockRoomState = []any{map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]string{"join_rule": "knock"}}}

// TestFederationKnock: a user of one server knocks on a room of the
// other (make_knock, send_knock), sees the knock in /sync with the
// room's stripped state (its name, the create event in full); the room's
// admin sees the knock, invites, and the knocker joins; a second knock is
// withdrawn (make_leave, send_leave). Both ways.
func TestFederationKnock(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		for _, dir := range [][2]string{{fedA, fedB}, {fedB, fedA}} {
			host, guest := dir[0], dir[1]
			t.Run("room on "+host, func(t *testing.T) { knockAndAccept(t, f, host, guest) })
		}
	})
}

// knockAndAccept is TestFederationKnock one way: a room on host, a
// knocker of guest.
func knockAndAccept(t *testing.T, f *Federation, host, guest string) {
	hs, gs := f.Servers[host], f.Servers[guest]
	admin, knocker := hs.Register("admin"), gs.Register("knocker")
	room := createRoom(t, hs, admin, map[string]any{"preset": "private_chat", "name": "Knock here", "initial_state": knockRoomState})
	adminSync, _ := newSyncer(t, admin, "")
	knockerSync, _ := newSyncer(t, knocker, "")

	// Without a server to go through, the guest's server cannot know the
	// room (v12 room ids name no server).
	if _, err := knocker.KnockRoom(ctx(), room.String(), &mautrix.ReqKnockRoom{}); errcode(err) != "M_NOT_FOUND" {
		t.Errorf("knock without via: %v, want M_NOT_FOUND", err)
	}
	if _, err := knocker.KnockRoom(ctx(), room.String(), &mautrix.ReqKnockRoom{Via: []string{host}, Reason: "let me in"}); err != nil {
		t.Fatalf("knock over federation: %v", err)
	}
	resp := knockerSync.until("the knock", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Knock[room]; return ok })
	var name string
	var create *event.Event
	for _, e := range resp.Rooms.Knock[room].State.Events {
		_ = e.Content.ParseRaw(e.Type)
		switch e.Type {
		case event.StateRoomName:
			name = e.Content.AsRoomName().Name
		case event.StateCreate:
			create = e
		}
	}
	if name != "Knock here" {
		t.Errorf("knock state has room name %q", name)
	}
	if create == nil {
		t.Errorf("knock state has no m.room.create event: %v", resp.Rooms.Knock[room].State.Events)
	}
	adminSync.until("the knock", func(r *mautrix.RespSync) bool {
		return syncHasMember(r, room, knocker.UserID, event.MembershipKnock)
	})
	if _, err := admin.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: knocker.UserID}); err != nil {
		t.Fatalf("the admin accepts the knock: %v", err)
	}
	knockerSync.until("the invite", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Invite[room]; return ok })
	if _, err := knocker.JoinRoomByID(ctx(), room); err != nil {
		t.Fatalf("the knocker joins: %v", err)
	}
	adminSync.until("the knocker's join", func(r *mautrix.RespSync) bool {
		return syncHasMember(r, room, knocker.UserID, event.MembershipJoin)
	})
	sendText(t, knocker, room, "thanks for letting me in")
	adminSync.until("the knocker's message", func(r *mautrix.RespSync) bool {
		return slices.Contains(timelineBodies(r, room), "thanks for letting me in")
	})

	// A knock withdrawn: the leave goes through the room's server.
	other := createRoom(t, hs, admin, map[string]any{"preset": "private_chat", "initial_state": knockRoomState})
	if _, err := knocker.KnockRoom(ctx(), other.String(), &mautrix.ReqKnockRoom{Via: []string{host}}); err != nil {
		t.Fatalf("second knock: %v", err)
	}
	adminSync.until("the second knock", func(r *mautrix.RespSync) bool { return syncHasMember(r, other, knocker.UserID, event.MembershipKnock) })
	if _, err := knocker.LeaveRoom(ctx(), other); err != nil {
		t.Fatalf("the knocker withdraws: %v", err)
	}
	adminSync.until("the knock withdrawn", func(r *mautrix.RespSync) bool { return syncHasMember(r, other, knocker.UserID, event.MembershipLeave) })
	knockerSync.until("the withdrawn knock among the knocker's left rooms", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Leave[other]; return ok })
}

// TestFederationKnockEndpoints: make_knock and send_knock as another
// server calls them: the room's version must be one the asking server
// runs, only knockable rooms take knocks, and send_knock answers the
// stripped state with the create event in full (spec v1.16). An invite
// whose stripped state carries a create event that does not give the
// room id is refused.
func TestFederationKnockEndpoints(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a := f.Servers[fedA]
		alice := a.Register("alice")
		room := createRoom(t, a, alice, map[string]any{"preset": "private_chat", "name": "Knock", "initial_state": knockRoomState})
		public := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
		v1 := "/_matrix/federation/v1"
		dave := "@dave:" + fedB
		makeKnock := func(r id.RoomID, vers string) (int, map[string]any) {
			return f.asServer(t, fedA, fedB, "GET", v1+"/make_knock/"+url.PathEscape(r.String())+"/"+url.PathEscape(dave)+vers, nil)
		}
		if status, body := makeKnock(room, "?ver=10"); status != 400 || body["errcode"] != "M_INCOMPATIBLE_ROOM_VERSION" {
			t.Errorf("make_knock without the room's version: %d %v", status, body)
		}
		if status, body := makeKnock(public, "?ver=12"); status != 403 || body["errcode"] != "M_FORBIDDEN" {
			t.Errorf("make_knock on a public room: %d %v", status, body)
		}
		status, body := makeKnock(room, "?ver=11&ver=12")
		if status != 200 || body["room_version"] != "12" {
			t.Fatalf("make_knock: %d %v", status, body)
		}
		raw, _ := json.Marshal(body["event"])
		var proto gomatrixserverlib.ProtoEvent
		if err := json.Unmarshal(raw, &proto); err != nil {
			t.Fatal(err)
		}
		key := f.signingKey(t, fedB)
		knock, err := gomatrixserverlib.MustGetRoomVersion("12").NewEventBuilderFromProtoEvent(&proto).
			Build(time.Now(), fedB, gomatrixserverlib.KeyID(key.ID), key.Private)
		if err != nil {
			t.Fatal(err)
		}
		status, body = f.asServer(t, fedA, fedB, "PUT", v1+"/send_knock/"+url.PathEscape(room.String())+"/"+url.PathEscape(knock.EventID()), json.RawMessage(knock.JSON()))
		if status != 200 {
			t.Fatalf("send_knock: %d %v", status, body)
		}
		var create map[string]any
		state, _ := body["knock_room_state"].([]any)
		for _, e := range state {
			if m, _ := e.(map[string]any); m["type"] == "m.room.create" {
				create = m
			}
		}
		if create == nil || create["signatures"] == nil || create["hashes"] == nil {
			t.Errorf("knock_room_state lacks the full create event: %v", state)
		} else if id := "!" + strings.TrimPrefix(eventIDOf(t, create), "$"); id != room.String() {
			t.Errorf("the create event of knock_room_state gives room %s, want %s", id, room)
		}
		members, err := alice.Members(ctx(), room)
		if err != nil {
			t.Fatal(err)
		}
		knocked := false
		for _, e := range members.Chunk {
			_ = e.Content.ParseRaw(e.Type)
			knocked = knocked || e.GetStateKey() == dave && e.Content.AsMember().Membership == event.MembershipKnock
		}
		if !knocked {
			t.Errorf("dave's knock is not in the room's members on A")
		}

		// An invite of alice to a room of B whose stripped state holds the
		// create event of another room (this one) is refused, and so is
		// one without a create event.
		fakeRoom := "!" + strings.Repeat("x", 43)
		invite := buildPDU(t, fedB, key, id.RoomID(fakeRoom), id.UserID(dave), "m.room.member", ptr(alice.UserID.String()),
			map[string]string{"membership": "invite"}, []string{knock.EventID()}, nil)
		invitePath := "/_matrix/federation/v2/invite/" + url.PathEscape(fakeRoom) + "/" + url.PathEscape(invite.EventID())
		for what, stripped := range map[string][]any{"another room's create event": {create}, "no create event": {}} {
			status, body = f.asServer(t, fedA, fedB, "PUT", invitePath,
				map[string]any{"room_version": "12", "event": json.RawMessage(invite.JSON()), "invite_room_state": stripped})
			if status != 400 || !strings.Contains(fmt.Sprint(body["error"]), "m.room.create") {
				t.Errorf("invite whose stripped state has %s: %d %v", what, status, body)
			}
		}
	})
}

// ptr returns a pointer to s.
func ptr(s string) *string { return &s }

// TestFederationAllowListRooms: A federates with B only, B with A and C.
// A's users cannot join, invite or knock into a room where C has
// members: a join through B that turns out to be into such a room is
// taken back (make_leave, send_leave). Events of C's users that B relays
// are kept, their keys fetched from B as a notary.
func TestFederationAllowListRooms(t *testing.T) {
	t.Parallel()
	lists := allowLists(map[string][]string{fedA: {fedB}}) // B and C allow the others
	federationEnginesWith(t, []string{fedA, fedB, fedC}, lists, func(t *testing.T, f *Federation) {
		a, b, c := f.Servers[fedA], f.Servers[fedB], f.Servers[fedC]
		alice, alice2, bob, carol := a.Register("alice"), a.Register("alice2"), b.Register("bob"), c.Register("carol")
		dave := b.Register("dave")
		join := func(u *mautrix.Client, room id.RoomID) error {
			_, err := u.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedB}})
			return err
		}

		// A remote join into a room where C is: refused, and taken back.
		withCarol := createRoom(t, b, bob, map[string]any{"preset": "public_chat"})
		if err := join(carol, withCarol); err != nil {
			t.Fatalf("carol joins through B: %v", err)
		}
		err := join(alice, withCarol)
		if errcode(err) != "M_FORBIDDEN" || !strings.Contains(err.Error(), fedC) {
			t.Errorf("alice's join into a room with a member of C: %v, want M_FORBIDDEN naming %s", err, fedC)
		}
		if m := stateContent(t, b, bob, withCarol, "m.room.member", alice.UserID.String()); m["membership"] != "leave" {
			t.Errorf("alice's membership on B after the refused join = %v, want leave", m["membership"])
		}
		if r := a.Do("GET", roomPath(withCarol, "state"), alice.AccessToken, nil); r.Status == 200 {
			t.Errorf("alice reads the state of the room she was refused")
		}

		// A room carol has left is not refused, and A keeps her events
		// (checked with C's keys as B gives them).
		carolLeft := createRoom(t, b, bob, map[string]any{"preset": "public_chat"})
		if err := join(carol, carolLeft); err != nil {
			t.Fatalf("carol joins: %v", err)
		}
		if _, err := carol.LeaveRoom(ctx(), carolLeft); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "carol's leave on B", func() bool {
			r := b.Do("GET", roomPath(carolLeft, "state", "m.room.member", carol.UserID.String()), bob.AccessToken, nil)
			return r.Status == 200 && r.Body["membership"] == "leave"
		})
		if err := join(alice, carolLeft); err != nil {
			t.Fatalf("alice joins a room carol has left: %v", err)
		}
		if m := stateContent(t, a, alice, carolLeft, "m.room.member", carol.UserID.String()); m["membership"] != "leave" {
			t.Errorf("carol's membership on A = %v, want leave", m)
		}

		// A room alice is in, which carol joins afterwards.
		shared := createRoom(t, b, bob, map[string]any{"preset": "public_chat", "name": "Shared", "power_level_content_override": map[string]int{"invite": 0}})
		if err := join(alice, shared); err != nil {
			t.Fatalf("alice joins a room of B: %v", err)
		}
		if err := join(carol, shared); err != nil {
			t.Fatalf("carol joins the shared room: %v", err)
		}
		// A learns of carol's join through B (missing events, signed by C
		// only as far as A can check with C's key, which B vouches for).
		sendText(t, bob, shared, "after carol")
		waitUntil(t, "carol's join known on A", func() bool {
			r := a.Do("GET", roomPath(shared, "state", "m.room.member", carol.UserID.String()), alice.AccessToken, nil)
			return r.Status == 200 && r.Body["membership"] == "join"
		})
		// A message of carol's, relayed by B in a transaction, is kept.
		msg := sendText(t, carol, shared, "from C")
		waitUntil(t, "carol's message on B", func() bool {
			return b.Do("GET", roomPath(shared, "event", msg.String()), bob.AccessToken, nil).Status == 200
		})
		status, body := f.asServer(t, fedB, fedA, "GET", "/_matrix/federation/v1/event/"+url.PathEscape(msg.String()), nil)
		pdus, _ := body["pdus"].([]any)
		if status != 200 || len(pdus) != 1 {
			t.Fatalf("carol's message from B: %d %v", status, body)
		}
		status, body = f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/relay1", map[string]any{
			"origin": fedB, "origin_server_ts": time.Now().UnixMilli(), "pdus": pdus,
		})
		if res, _ := body["pdus"].(map[string]any)[msg.String()].(map[string]any); status != 200 || res == nil || res["error"] != nil && res["error"] != "" {
			t.Fatalf("carol's message relayed by B: %d %v", status, body)
		}
		r := a.Do("GET", roomPath(shared, "event", msg.String()), alice.AccessToken, nil).Expect(t, 200, "")
		if c, _ := r.Body["content"].(map[string]any); c["body"] != "from C" {
			t.Errorf("carol's relayed message on A = %v", r.Body)
		}

		// Now A refuses its users' joins, invites and knocks there.
		forbidden := func(what string, err error) {
			t.Helper()
			if errcode(err) != "M_FORBIDDEN" || !strings.Contains(err.Error(), fedC) {
				t.Errorf("%s: %v, want M_FORBIDDEN naming %s", what, err, fedC)
			}
		}
		_, err = alice.InviteUser(ctx(), shared, &mautrix.ReqInviteUser{UserID: dave.UserID})
		forbidden("invite of a user of B", err)
		_, err = alice.InviteUser(ctx(), shared, &mautrix.ReqInviteUser{UserID: alice2.UserID})
		forbidden("invite of a user of A", err)
		_, err = alice2.JoinRoom(ctx(), shared.String(), &mautrix.ReqJoinRoom{Via: []string{fedB}})
		forbidden("join", err)
		if _, err := bob.SendStateEvent(ctx(), shared, event.StateJoinRules, "", map[string]string{"join_rule": "knock"}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the knock join rule on A", func() bool {
			r := a.Do("GET", roomPath(shared, "state", "m.room.join_rules", ""), alice.AccessToken, nil)
			return r.Status == 200 && r.Body["join_rule"] == "knock"
		})
		_, err = alice2.KnockRoom(ctx(), shared.String(), &mautrix.ReqKnockRoom{Via: []string{fedB}})
		forbidden("knock", err)
	})
}

// TestFederationHierarchy: a space of A has a space of B as child; the
// hierarchy alice asks of A describes B's space and its children, which A
// is not in, as B tells (federation /hierarchy, through the child's via);
// suggested_only keeps the suggested children; B answers only about
// rooms A may see.
func TestFederationHierarchy(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, b := f.Servers[fedA], f.Servers[fedB]
		alice, bob := a.Register("alice"), b.Register("bob")
		space := func(s *Server, c *mautrix.Client, name string) id.RoomID {
			return createRoom(t, s, c, map[string]any{"preset": "public_chat", "name": name, "creation_content": map[string]string{"type": "m.space"}})
		}
		addChild := func(c *mautrix.Client, parent, child id.RoomID, via string, suggested bool) {
			t.Helper()
			if _, err := c.SendStateEvent(ctx(), parent, event.StateSpaceChild, child.String(), map[string]any{"via": []string{via}, "suggested": suggested}); err != nil {
				t.Fatal(err)
			}
		}
		remoteSpace := space(b, bob, "B's space")
		one := createRoom(t, b, bob, map[string]any{"preset": "public_chat", "name": "Child one"})
		two := createRoom(t, b, bob, map[string]any{"preset": "public_chat", "name": "Child two"})
		secret := createRoom(t, b, bob, map[string]any{"preset": "private_chat", "name": "Secret"})
		// Open to the members of "Child one".
		restricted := createRoom(t, b, bob, map[string]any{"preset": "private_chat", "name": "Restricted", "initial_state": []any{
			map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{
				"join_rule": "restricted", "allow": []any{map[string]string{"type": "m.room_membership", "room_id": one.String()}}}},
		}})
		addChild(bob, remoteSpace, one, fedB, false)
		addChild(bob, remoteSpace, two, fedB, true)
		addChild(bob, remoteSpace, secret, fedB, true)
		addChild(bob, remoteSpace, restricted, fedB, false)
		local := space(a, alice, "A's space")
		addChild(alice, local, remoteSpace, fedB, true)

		// Over federation.
		path := "/_matrix/federation/v1/hierarchy/" + url.PathEscape(remoteSpace.String())
		status, body := f.asServer(t, fedB, fedA, "GET", path, nil)
		if status != 200 {
			t.Fatalf("federation hierarchy: %d %v", status, body)
		}
		names := func(rooms []any) []string {
			var out []string
			for _, r := range rooms {
				n, _ := r.(map[string]any)["name"].(string)
				out = append(out, n)
			}
			slices.Sort(out)
			return out
		}
		room, _ := body["room"].(map[string]any)
		children, _ := body["children"].([]any)
		cs, _ := room["children_state"].([]any)
		if room["name"] != "B's space" || room["room_type"] != "m.space" || len(cs) != 4 {
			t.Errorf("hierarchy room = %v", room)
		}
		if got := names(children); !slices.Equal(got, []string{"Child one", "Child two"}) {
			t.Errorf("hierarchy children = %v", got)
		}
		if inacc, _ := body["inaccessible_children"].([]any); len(inacc) != 2 || !slices.Contains(inacc, any(secret.String())) || !slices.Contains(inacc, any(restricted.String())) {
			t.Errorf("inaccessible_children = %v, want %s and %s", inacc, secret, restricted)
		}
		_, body = f.asServer(t, fedB, fedA, "GET", path+"?suggested_only=true", nil)
		if children, _ := body["children"].([]any); !slices.Equal(names(children), []string{"Child two"}) {
			t.Errorf("suggested-only children = %v", names(children))
		}
		if status, body := f.asServer(t, fedB, fedA, "GET", "/_matrix/federation/v1/hierarchy/"+url.PathEscape(secret.String()), nil); status != 404 {
			t.Errorf("hierarchy of a room A may not see: %d %v", status, body)
		}

		// Through the client API of A.
		hierarchy := func(query string) []string {
			r := a.Do("GET", "/_matrix/client/v1/rooms/"+url.PathEscape(local.String())+"/hierarchy"+query, alice.AccessToken, nil).Expect(t, 200, "")
			rooms, _ := r.Body["rooms"].([]any)
			return names(rooms)
		}
		if got := hierarchy(""); !slices.Equal(got, []string{"A's space", "B's space", "Child one", "Child two"}) {
			t.Errorf("alice's hierarchy = %v", got)
		}
		if got := hierarchy("?suggested_only=true"); !slices.Equal(got, []string{"A's space", "B's space", "Child two"}) {
			t.Errorf("alice's suggested-only hierarchy = %v", got)
		}

		// Once alice is in "Child one", B describes the restricted room to
		// A (with its allowed rooms), and A shows it to her only.
		if _, err := alice.JoinRoom(ctx(), one.String(), &mautrix.ReqJoinRoom{Via: []string{fedB}}); err != nil {
			t.Fatal(err)
		}
		_, body = f.asServer(t, fedB, fedA, "GET", path, nil)
		children, _ = body["children"].([]any)
		if got := names(children); !slices.Equal(got, []string{"Child one", "Child two", "Restricted"}) {
			t.Errorf("hierarchy children once A has a member in Child one = %v", got)
		}
		if got := hierarchy(""); !slices.Equal(got, []string{"A's space", "B's space", "Child one", "Child two", "Restricted"}) {
			t.Errorf("alice's hierarchy once in Child one = %v", got)
		}
		alice2 := a.Register("alice2")
		r := a.Do("GET", "/_matrix/client/v1/rooms/"+url.PathEscape(local.String())+"/hierarchy", alice2.AccessToken, nil).Expect(t, 200, "")
		rooms, _ := r.Body["rooms"].([]any)
		if got := names(rooms); !slices.Equal(got, []string{"A's space", "B's space", "Child one", "Child two"}) {
			t.Errorf("the hierarchy of a user of A not in Child one = %v", got)
		}
	})
}

// TestFederationOriginConcurrency: with one request of an origin at a
// time and none waiting, a second signed request of that origin while
// the first is held up is refused with 429 M_LIMIT_EXCEEDED; another
// origin is not; once the first is done, the origin is served again.
func TestFederationOriginConcurrency(t *testing.T) {
	t.Parallel()
	const slow = "slow.fed.test"
	storagetest.EnginesEach(t, func(t *testing.T, dbURL func(testing.TB) string) {
		// A server that accepts connections and never answers: A's fetch
		// of its keys holds the request that needs them.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		accepted := make(chan net.Conn, 16)
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				accepted <- conn
			}
		}()
		f := startFederation(t, dbURL, []string{fedA, fedB, fedC}, func(cfg *config.Config) {
			cfg.Federation.OriginConcurrency = config.Concurrency{Concurrent: 1, MaxQueued: 0}
			if cfg.Global.ServerName == fedA {
				cfg.Federation.AllowedServers = append(cfg.Federation.AllowedServers, slow)
				cfg.Federation.ServerAddresses[slow] = l.Addr().String()
			}
		})
		a := f.Servers[fedA]
		alice := a.Register("alice")
		room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
		key, err := config.NewSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		create := stateEventID(t, a, alice, room, "m.room.create", "")
		pdu := buildPDU(t, slow, key, room, id.UserID("@x:"+slow), "m.room.message", nil, map[string]string{"body": "slow"}, []string{create}, nil)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/held", map[string]any{"origin": fedB, "pdus": []any{json.RawMessage(pdu.JSON())}})
		}()
		var held net.Conn
		select {
		case held = <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatal("A never asked the slow server for its keys")
		}
		path := "/_matrix/federation/v1/query/directory?room_alias=" + url.QueryEscape("#nowhere:"+fedA)
		status, body := f.asServer(t, fedA, fedB, "GET", path, nil)
		if status != 429 || body["errcode"] != "M_LIMIT_EXCEEDED" {
			t.Errorf("a second request of B while its first is held: %d %v, want 429 M_LIMIT_EXCEEDED", status, body)
		}
		if status, body := f.asServer(t, fedA, fedC, "GET", path, nil); status == 429 {
			t.Errorf("another origin was limited: %d %v", status, body)
		}
		held.Close()
		wg.Wait()
		if status, body := f.asServer(t, fedA, fedB, "GET", path, nil); status == 429 {
			t.Errorf("B still limited after its first request ended: %d %v", status, body)
		}
	})
}
