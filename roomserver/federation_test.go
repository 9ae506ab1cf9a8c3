package roomserver_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/roomserver"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

const (
	remoteName = "remote.test"
	frank      = "@frank:remote.test"
)

// TestRemoteJoinImport walks a federated join through the roomserver
// API alone: the resident room's template, the joining server's signed
// join accepted by the resident, and the answer (state before the join,
// auth chain) imported on the joining server as a new room, which then
// accepts the resident's next message.
func TestRemoteJoinImport(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		resident := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		remoteKey := testKey(t)
		log := logrus.New()
		log.SetLevel(logrus.WarnLevel)
		joiner, err := roomserver.New(roomserver.Deps{
			Global: &config.Global{ServerName: remoteName, SigningKey: remoteKey.String()},
			DB:     storagetest.Open(t, storagetest.SQLiteURL(t)), Bus: bustest.Embedded(t), Log: logrus.NewEntry(log),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := joiner.Start(ctx()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = joiner.Stop(ctx()) })

		roomID := publicRoom(t, resident, "12")
		send(t, resident, roomID, alice, "m.room.message", nil, map[string]string{"body": "before"})

		// The auth rules decide: no template for what they refuse.
		if _, err := resident.EventTemplate(ctx(), roomID, api.ProtoEvent{Type: "m.room.member", StateKey: sk(frank), Sender: frank,
			Content: raw(map[string]string{"membership": "invite"})}); err == nil {
			t.Fatal("a template for frank inviting herself")
		} else if na := (*api.NotAllowedError)(nil); !errors.As(err, &na) {
			t.Fatalf("template error = %v, want NotAllowedError", err)
		}
		if _, err := resident.EventTemplate(ctx(), "!nope", api.ProtoEvent{Type: "m.room.member", StateKey: sk(frank), Sender: frank}); !errors.Is(err, api.ErrRoomNotFound) {
			t.Fatalf("template of an unknown room: %v", err)
		}

		tmpl, err := resident.EventTemplate(ctx(), roomID, api.ProtoEvent{Type: "m.room.member", StateKey: sk(frank), Sender: frank,
			Content: raw(map[string]string{"membership": "join"})})
		if err != nil {
			t.Fatal(err)
		}
		var proto gomatrixserverlib.ProtoEvent
		if err := json.Unmarshal(tmpl.Proto, &proto); err != nil {
			t.Fatal(err)
		}
		v, _ := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(tmpl.RoomVersion))
		join, err := v.NewEventBuilderFromProtoEvent(&proto).Build(time.Now(), remoteName, gomatrixserverlib.KeyID(remoteKey.ID), remoteKey.Private)
		if err != nil {
			t.Fatal(err)
		}
		input(t, resident, roomID, api.InputResult{EventID: join.EventID()}, join.JSON())
		if servers, err := resident.JoinedServers(ctx(), roomID); err != nil || !slices.Equal(servers, []string{remoteName, serverName}) {
			t.Fatalf("JoinedServers = %v, %v", servers, err)
		}

		before, err := resident.StateBefore(ctx(), join.EventID())
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{join.EventID()}
		var stateJSON []json.RawMessage
		for _, e := range before {
			ids = append(ids, e.EventID)
			stateJSON = append(stateJSON, e.JSON)
		}
		chain, err := resident.AuthChain(ctx(), ids)
		if err != nil {
			t.Fatal(err)
		}
		var chainJSON []json.RawMessage
		for _, e := range chain {
			chainJSON = append(chainJSON, e.JSON)
		}
		if len(chain) == 0 {
			t.Fatal("empty auth chain")
		}

		// A join the state given does not allow (no join rules: the room
		// is invite-only) is refused, and leaves no room behind.
		forged := stateJSON[:0:0]
		for _, e := range before {
			if p, err := e.PDU(); err == nil && p.Type() != "m.room.join_rules" {
				forged = append(forged, e.JSON)
			}
		}
		if _, err := joiner.ImportRoom(ctx(), api.ImportRoomRequest{RoomID: roomID, RoomVersion: tmpl.RoomVersion,
			State: forged, AuthChain: chainJSON, Join: join.JSON()}); err == nil {
			t.Fatal("imported a join the state does not allow")
		}
		if _, err := joiner.RoomVersion(ctx(), roomID); !errors.Is(err, api.ErrRoomNotFound) {
			t.Fatalf("a refused import left a room: %v", err)
		}

		res, err := joiner.ImportRoom(ctx(), api.ImportRoomRequest{RoomID: roomID, RoomVersion: tmpl.RoomVersion,
			State: stateJSON, AuthChain: chainJSON, Join: join.JSON()})
		if err != nil || res.EventID != join.EventID() || res.Rejected != "" {
			t.Fatalf("ImportRoom = %+v, %v", res, err)
		}
		if _, err := joiner.ImportRoom(ctx(), api.ImportRoomRequest{RoomID: roomID, RoomVersion: tmpl.RoomVersion,
			State: stateJSON, AuthChain: chainJSON, Join: join.JSON()}); err == nil {
			t.Fatal("imported the same room twice")
		}
		if m, _, err := joiner.Membership(ctx(), roomID, frank); err != nil || m != "join" {
			t.Fatalf("frank's membership = %q, %v", m, err)
		}
		if m, _, err := joiner.Membership(ctx(), roomID, alice); err != nil || m != "join" {
			t.Fatalf("alice's membership on the joining server = %q, %v", m, err)
		}
		if got, want := stateIDs(t, joiner, roomID), stateIDs(t, resident, roomID); !slices.Equal(got, want) {
			t.Fatalf("imported state %v, resident's %v", got, want)
		}
		// Only the join is in the joining server's timeline.
		tl, err := joiner.Timeline(ctx(), roomID, api.TimelineEnd, api.Backward, 50)
		if err != nil || len(tl) != 1 || tl[0].EventID != join.EventID() {
			t.Fatalf("timeline = %d events, %v", len(tl), err)
		}
		// State events are served all the same.
		if name := mustState(t, joiner, roomID, "m.room.name"); name.StreamPos != 0 {
			t.Errorf("an outlier's stream position = %d, want 0", name.StreamPos)
		}

		// The resident's next message is accepted where frank joined.
		msg := send(t, resident, roomID, alice, "m.room.message", nil, map[string]string{"body": "after"})
		input(t, joiner, roomID, api.InputResult{EventID: msg.EventID}, msg.JSON)
		if tl, _ := joiner.Timeline(ctx(), roomID, api.TimelineEnd, api.Backward, 50); len(tl) != 2 || tl[0].EventID != msg.EventID {
			t.Fatalf("timeline after the message: %d events", len(tl))
		}
		for _, rs := range []*roomserver.Component{resident, joiner} {
			if ext, err := rs.ForwardExtremities(ctx(), roomID); err != nil || !slices.Equal(ext, []string{msg.EventID}) {
				t.Errorf("forward extremities = %v, %v; want the message", ext, err)
			}
		}
	})
}

// stateIDs lists the ids of the room's current state, sorted.
func stateIDs(t *testing.T, rs *roomserver.Component, roomID string) []string {
	t.Helper()
	st, err := rs.CurrentState(ctx(), roomID)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(st))
	for i, e := range st {
		ids[i] = e.EventID
	}
	slices.Sort(ids)
	return ids
}

// TestImportMembership: an invite to a room this server is not in makes
// a stub room (the invite its only state, the inviter's stripped state
// answered by StrippedState), the leave rejecting it follows, and a stub
// room can still be imported by a join.
func TestImportMembership(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		resident := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		roomID := publicRoom(t, resident, "12")
		invited := "@ivy:" + serverName
		local := newRoomserver(t, storagetest.Open(t, storagetest.SQLiteURL(t)), bustest.Embedded(t), testKey(t))

		invite := send(t, resident, roomID, alice, "m.room.member", sk(invited), map[string]string{"membership": "invite"})
		stripped, err := resident.StrippedState(ctx(), roomID)
		if err != nil || len(stripped) == 0 {
			t.Fatalf("resident's stripped state: %v %v", stripped, err)
		}
		res, err := local.ImportMembership(ctx(), api.ImportMembershipRequest{RoomID: roomID, RoomVersion: "12", Event: invite.JSON, StrippedState: stripped})
		if err != nil || res.EventID != invite.EventID {
			t.Fatalf("ImportMembership(invite) = %+v, %v", res, err)
		}
		if m, _, err := local.Membership(ctx(), roomID, invited); err != nil || m != "invite" {
			t.Fatalf("membership after the invite = %q, %v", m, err)
		}
		got, err := local.StrippedState(ctx(), roomID)
		if err != nil || len(got) != len(stripped) {
			t.Fatalf("stub room's stripped state = %d events, %v; want %d", len(got), err, len(stripped))
		}
		if _, err := local.CurrentStateEvent(ctx(), roomID, api.StateKey{Type: "m.room.create"}); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("a stub room has a create event: %v", err)
		}
		// A message of a stub room is no invite.
		msg := send(t, resident, roomID, alice, "m.room.message", nil, map[string]string{"body": "x"})
		if _, err := local.ImportMembership(ctx(), api.ImportMembershipRequest{RoomID: roomID, RoomVersion: "12", Event: msg.JSON}); !errors.Is(err, api.ErrInvalidEvent) {
			t.Fatalf("ImportMembership(message) = %v", err)
		}
		// The event must be of the room named.
		if _, err := local.ImportMembership(ctx(), api.ImportMembershipRequest{RoomID: "!other", RoomVersion: "12", Event: invite.JSON}); err == nil {
			t.Fatal("an invite whose room id differs was kept")
		}
		leave := send(t, resident, roomID, invited, "m.room.member", sk(invited), map[string]string{"membership": "leave"})
		if _, err := local.ImportMembership(ctx(), api.ImportMembershipRequest{RoomID: roomID, RoomVersion: "12", Event: leave.JSON}); err != nil {
			t.Fatalf("ImportMembership(leave) = %v", err)
		}
		if m, _, err := local.Membership(ctx(), roomID, invited); err != nil || m != "leave" {
			t.Fatalf("membership after the leave = %q, %v", m, err)
		}
		// The user joins after all: the stub room is imported into.
		join := send(t, resident, roomID, invited, "m.room.member", sk(invited), map[string]string{"membership": "join"})
		before, err := resident.StateBefore(ctx(), join.EventID)
		if err != nil {
			t.Fatal(err)
		}
		var state, chain []json.RawMessage
		ids := []string{join.EventID}
		for _, e := range before {
			state = append(state, e.JSON)
			ids = append(ids, e.EventID)
		}
		authChain, err := resident.AuthChain(ctx(), ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range authChain {
			chain = append(chain, e.JSON)
		}
		if _, err := local.ImportRoom(ctx(), api.ImportRoomRequest{RoomID: roomID, RoomVersion: "12", State: state, AuthChain: chain, Join: join.JSON}); err != nil {
			t.Fatalf("ImportRoom into a stub room: %v", err)
		}
		if m, _, err := local.Membership(ctx(), roomID, invited); err != nil || m != "join" {
			t.Fatalf("membership after the join = %q, %v", m, err)
		}
		if got, want := stateIDs(t, local, roomID), stateIDs(t, resident, roomID); !slices.Equal(got, want) {
			t.Fatalf("imported state %v, resident's %v", got, want)
		}
	})
}
