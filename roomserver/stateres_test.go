package roomserver_test

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/roomserver"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

const (
	carol = "@carol:remote.test"
	dave  = "@dave:remote.test"
	erin  = "@erin:remote.test"
)

// remoteServer builds events as another server would, with explicit
// prev_events and auth_events, so tests can fork the DAG at will.
type remoteServer struct {
	t   *testing.T
	v   gomatrixserverlib.IRoomVersion
	key ed25519.PrivateKey
	// room is the room the events go to.
	room string
	// createID is the create event's id, left out of v12 auth_events.
	createID string
}

func (s *remoteServer) build(sender, typ string, stateKey *string, content any, prevs []string, auth ...string) (gomatrixserverlib.PDU, json.RawMessage) {
	s.t.Helper()
	var authIDs []string
	for _, a := range auth {
		if a != "" && !(s.v.DomainlessRoomIDs() && a == s.createID) {
			authIDs = append(authIDs, a)
		}
	}
	var depth int64 = 100 // depth only orders; the auth rules do not read it
	proto := gomatrixserverlib.ProtoEvent{SenderID: sender, RoomID: s.room, Type: typ, StateKey: stateKey,
		Content: spec.RawJSON(raw(content)), PrevEvents: prevs, AuthEvents: authIDs, Depth: depth}
	pdu, err := s.v.NewEventBuilderFromProtoEvent(&proto).Build(time.Now(), "remote.test", "ed25519:r", s.key)
	if err != nil {
		s.t.Fatalf("build %s: %v", typ, err)
	}
	return pdu, pdu.JSON()
}

// input sends events and checks each was accepted as expected.
func input(t *testing.T, rs *roomserver.Component, roomID string, want api.InputResult, events ...json.RawMessage) {
	t.Helper()
	res, err := rs.InputEvents(ctx(), roomID, events)
	if err != nil {
		t.Fatalf("input: %v", err)
	}
	for _, r := range res {
		if (r.Rejected != "") != (want.Rejected != "") || r.SoftFailed != want.SoftFailed {
			t.Fatalf("input %s: got %+v, want rejected=%v soft_failed=%v", r.EventID, r, want.Rejected != "", want.SoftFailed)
		}
	}
}

func stateID(t *testing.T, rs *roomserver.Component, roomID, typ, stateKey string) string {
	t.Helper()
	ev, err := rs.CurrentStateEvent(ctx(), roomID, api.StateKey{Type: typ, StateKey: stateKey})
	if err != nil {
		return ""
	}
	return ev.EventID
}

// TestStateResolutionOnForks builds forked DAGs whose branches conflict
// on a ban, on the topic and on the join rules, and checks the resolved
// current state against what state resolution v2 (v2.1 for room version
// 12) must give: power events (bans, join rules) first, then the others
// re-checked against them.
func TestStateResolutionOnForks(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		for _, v := range []string{"6", "10", "11", "12"} {
			t.Run("v"+v, func(t *testing.T) {
				roomID := publicRoom(t, rs, v,
					api.ProtoEvent{Type: "m.room.topic", StateKey: sk(""), Sender: alice, Content: raw(map[string]string{"topic": "original"})},
					// carol (remote) is a moderator, everyone may set the topic.
					api.ProtoEvent{Type: "m.room.power_levels", StateKey: sk(""), Sender: alice, Content: powerLevelsWith(v, map[string]int{alice: 100, carol: 50}, 0)},
				)
				_, pk, _ := ed25519.GenerateKey(nil)
				create := stateID(t, rs, roomID, "m.room.create", "")
				srv := &remoteServer{t: t, v: gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(v)), key: pk, room: roomID, createID: create}
				pl := stateID(t, rs, roomID, "m.room.power_levels", "")
				jr := stateID(t, rs, roomID, "m.room.join_rules", "")
				last := func() string {
					tl, err := rs.Timeline(ctx(), roomID, api.TimelineEnd, api.Backward, 1)
					if err != nil || len(tl) != 1 {
						t.Fatalf("timeline: %v", err)
					}
					return tl[0].EventID
				}

				// carol and dave join over federation, one after the other.
				cj, cjRaw := srv.build(carol, "m.room.member", sk(carol), map[string]string{"membership": "join"}, []string{last()}, create, pl, jr)
				input(t, rs, roomID, api.InputResult{}, cjRaw)
				dj, djRaw := srv.build(dave, "m.room.member", sk(dave), map[string]string{"membership": "join"}, []string{cj.EventID()}, create, pl, jr)
				input(t, rs, roomID, api.InputResult{}, djRaw)

				// Fork 1 from dave's join: dave sets the topic while carol
				// bans dave. The topic arrives first and is current; then
				// the ban, on its own branch, is accepted; resolution must
				// keep the ban and drop dave's topic.
				_, topicRaw := srv.build(dave, "m.room.topic", sk(""), map[string]string{"topic": "dave was here"}, []string{dj.EventID()}, create, pl, dj.EventID())
				input(t, rs, roomID, api.InputResult{}, topicRaw)
				if got := contentOf(t, mustState(t, rs, roomID, "m.room.topic"))["topic"]; got != "dave was here" {
					t.Fatalf("before the fork meets: topic %v", got)
				}
				_, banRaw := srv.build(carol, "m.room.member", sk(dave), map[string]string{"membership": "ban"}, []string{dj.EventID()}, create, pl, cj.EventID(), dj.EventID())
				input(t, rs, roomID, api.InputResult{}, banRaw)
				if m, _, _ := rs.Membership(ctx(), roomID, dave); m != "ban" {
					t.Fatalf("after resolution dave's membership is %q, want ban", m)
				}
				if got := contentOf(t, mustState(t, rs, roomID, "m.room.topic"))["topic"]; got != "original" {
					t.Fatalf("after resolution the topic is %v, want the original: a banned user's topic must lose", got)
				}
				// A local event now merges both branches.
				merge := send(t, rs, roomID, alice, "m.room.message", nil, map[string]string{"body": "merged"})
				pdu, _ := merge.PDU()
				if len(pdu.PrevEventIDs()) != 2 {
					t.Fatalf("local event after a fork must reference both extremities, got %v", pdu.PrevEventIDs())
				}

				// Fork 2 from the merge: carol makes the room invite-only
				// while erin joins. Resolution applies the join rules
				// first, and erin's join fails against them.
				_, jrRaw := srv.build(carol, "m.room.join_rules", sk(""), map[string]string{"join_rule": "invite"}, []string{merge.EventID}, create, pl, cj.EventID())
				_, ejRaw := srv.build(erin, "m.room.member", sk(erin), map[string]string{"join_rule": "", "membership": "join"}, []string{merge.EventID}, create, pl, jr)
				input(t, rs, roomID, api.InputResult{}, ejRaw)
				if m, _, _ := rs.Membership(ctx(), roomID, erin); m != "join" {
					t.Fatalf("erin's join on its own: %q", m)
				}
				input(t, rs, roomID, api.InputResult{}, jrRaw)
				if got, _ := rs.CurrentStateEvent(ctx(), roomID, api.StateKey{Type: "m.room.join_rules"}); contentOf(t, got)["join_rule"] != "invite" {
					t.Fatalf("join rules after resolution: %v", contentOf(t, got))
				}
				if m, _, _ := rs.Membership(ctx(), roomID, erin); m == "join" {
					t.Fatalf("erin's concurrent join into a room made invite-only must not survive resolution")
				}

				// An event that fails the auth rules against the state
				// before it is rejected, and a banned user's event that
				// passes against an old state but not the current one is
				// soft-failed; neither changes state or shows.
				_, forged := srv.build(dave, "m.room.power_levels", sk(""), powerLevelsWith(v, map[string]int{dave: 100}, 0), []string{merge.EventID}, create, pl, dj.EventID())
				input(t, rs, roomID, api.InputResult{Rejected: "x"}, forged)
				late, lateRaw := srv.build(dave, "m.room.message", nil, map[string]string{"body": "still here?"}, []string{dj.EventID()}, create, pl, dj.EventID())
				input(t, rs, roomID, api.InputResult{SoftFailed: true}, lateRaw)
				if _, err := rs.Event(ctx(), late.EventID()); err == nil {
					t.Fatalf("a soft-failed event must not be served")
				}
			})
		}
	})
}

// powerLevelsWith is powerLevels with a state_default.
func powerLevelsWith(version string, users map[string]int, stateDefault int) json.RawMessage {
	var pl map[string]any
	_ = json.Unmarshal(powerLevels(version, users), &pl)
	pl["state_default"] = stateDefault
	return raw(pl)
}

func mustState(t *testing.T, rs *roomserver.Component, roomID, typ string) api.Event {
	t.Helper()
	ev, err := rs.CurrentStateEvent(ctx(), roomID, api.StateKey{Type: typ})
	if err != nil {
		t.Fatalf("state %s: %v", typ, err)
	}
	return ev
}
