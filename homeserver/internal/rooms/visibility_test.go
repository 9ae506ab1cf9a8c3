package rooms

import (
	"encoding/json"
	"testing"
)

func TestAllowed(t *testing.T) {
	tests := []struct {
		name        string
		vis         string
		membership  string
		joinedAfter bool
		want        bool
	}{
		{"world readable, never a member", visWorldReadable, "", false, true},
		{"world readable, banned", visWorldReadable, membershipBan, false, true},
		{"shared, joined at the event", visShared, membershipJoin, false, true},
		{"shared, before the user joined, now joined", visShared, "", true, true},
		{"shared, never joined", visShared, "", false, false},
		{"shared, invited at the event, never joined", visShared, membershipInvite, false, false},
		{"shared, after the user left", visShared, membershipLeave, false, false},
		{"shared, before the user left (was joined since)", visShared, membershipLeave, true, true},
		{"invited, invited at the event", visInvited, membershipInvite, false, true},
		{"invited, joined at the event", visInvited, membershipJoin, false, true},
		{"invited, before the invite, joined since", visInvited, "", true, false},
		{"invited, after leaving", visInvited, membershipLeave, false, false},
		{"joined, joined at the event", visJoined, membershipJoin, false, true},
		{"joined, invited at the event", visJoined, membershipInvite, true, false},
		{"joined, before joining", visJoined, "", true, false},
		{"joined, after leaving", visJoined, membershipLeave, false, false},
		{"joined, banned at the event", visJoined, membershipBan, false, false},
		{"knock at the event, shared, never joined", visShared, membershipKnock, false, false},
	}
	for _, tt := range tests {
		if got := allowed(tt.vis, tt.membership, tt.joinedAfter); got != tt.want {
			t.Errorf("%s: allowed(%q, %q, %v) = %v, want %v", tt.name, tt.vis, tt.membership, tt.joinedAfter, got, tt.want)
		}
	}
}

func TestCanSeeExceptions(t *testing.T) {
	tests := []struct {
		name                string
		visBefore, visAfter string
		memBefore, memAfter string
		joinedAfter         bool
		want                bool
	}{
		{"own join under joined visibility", visJoined, visJoined, "", membershipJoin, false, true},
		{"own leave under joined visibility", visJoined, visJoined, membershipJoin, membershipLeave, false, true},
		{"own invite under joined visibility", visJoined, visJoined, "", membershipInvite, false, false},
		{"own invite under invited visibility", visInvited, visInvited, "", membershipInvite, false, true},
		{"visibility to world_readable seen by a stranger", visJoined, visWorldReadable, "", "", false, true},
		{"visibility from world_readable seen by a stranger", visWorldReadable, visJoined, "", "", false, true},
		{"visibility change between closed values, stranger", visJoined, visInvited, "", "", false, false},
		{"someone else's event after the user left", visShared, visShared, membershipLeave, membershipLeave, false, false},
	}
	for _, tt := range tests {
		if got := canSee(tt.visBefore, tt.visAfter, tt.memBefore, tt.memAfter, tt.joinedAfter); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestVisibilityOf(t *testing.T) {
	for content, want := range map[string]string{
		`{"history_visibility":"world_readable"}`: visWorldReadable,
		`{"history_visibility":"joined"}`:         visJoined,
		`{"history_visibility":"invited"}`:        visInvited,
		`{"history_visibility":"shared"}`:         visShared,
		`{"history_visibility":"everyone"}`:       visShared,
		`{}`:                                      visShared,
		`{"history_visibility":7}`:                visShared,
	} {
		if got := visibilityOf(json.RawMessage(content)); got != want {
			t.Errorf("visibilityOf(%s) = %q, want %q", content, got, want)
		}
	}
}
