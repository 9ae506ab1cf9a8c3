package events

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
		{"world readable, never a member", VisWorldReadable, "", false, true},
		{"world readable, banned", VisWorldReadable, "ban", false, true},
		{"shared, joined at the event", VisShared, "join", false, true},
		{"shared, before the user joined, now joined", VisShared, "", true, true},
		{"shared, never joined", VisShared, "", false, false},
		{"shared, invited at the event, never joined", VisShared, "invite", false, false},
		{"shared, after the user left", VisShared, "leave", false, false},
		{"shared, before the user left (was joined since)", VisShared, "leave", true, true},
		{"invited, invited at the event", VisInvited, "invite", false, true},
		{"invited, joined at the event", VisInvited, "join", false, true},
		{"invited, before the invite, joined since", VisInvited, "", true, false},
		{"invited, after leaving", VisInvited, "leave", false, false},
		{"joined, joined at the event", VisJoined, "join", false, true},
		{"joined, invited at the event", VisJoined, "invite", true, false},
		{"joined, before joining", VisJoined, "", true, false},
		{"joined, after leaving", VisJoined, "leave", false, false},
		{"joined, banned at the event", VisJoined, "ban", false, false},
		{"knock at the event, shared, never joined", VisShared, "knock", false, false},
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
		{"own join under joined visibility", VisJoined, VisJoined, "", "join", false, true},
		{"own leave under joined visibility", VisJoined, VisJoined, "join", "leave", false, true},
		{"own invite under joined visibility", VisJoined, VisJoined, "", "invite", false, false},
		{"own invite under invited visibility", VisInvited, VisInvited, "", "invite", false, true},
		{"visibility to world_readable seen by a stranger", VisJoined, VisWorldReadable, "", "", false, true},
		{"visibility from world_readable seen by a stranger", VisWorldReadable, VisJoined, "", "", false, true},
		{"visibility change between closed values, stranger", VisJoined, VisInvited, "", "", false, false},
		{"someone else's event after the user left", VisShared, VisShared, "leave", "leave", false, false},
	}
	for _, tt := range tests {
		if got := CanSee(tt.visBefore, tt.visAfter, tt.memBefore, tt.memAfter, tt.joinedAfter); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestVisibilityOf(t *testing.T) {
	for content, want := range map[string]string{
		`{"history_visibility":"world_readable"}`: VisWorldReadable,
		`{"history_visibility":"joined"}`:         VisJoined,
		`{"history_visibility":"invited"}`:        VisInvited,
		`{"history_visibility":"shared"}`:         VisShared,
		`{"history_visibility":"everyone"}`:       VisShared,
		`{}`:                                      VisShared,
		`{"history_visibility":7}`:                VisShared,
	} {
		if got := VisibilityOf(json.RawMessage(content)); got != want {
			t.Errorf("VisibilityOf(%s) = %q, want %q", content, got, want)
		}
	}
}
