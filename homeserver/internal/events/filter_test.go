package events

import (
	"encoding/json"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, v string
		want       bool
	}{
		{"m.*", "m.room.message", true},
		{"m.*", "com.example", false},
		{"*.message", "m.room.message", true},
		{"m.*.message", "m.room.message", true},
		{"m.*.message", "m.room.member", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"*", "", true},
		{"m.room.message", "m.room.message", true},
		{"m.room.message", "m.room.messages", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.v); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.v, got, tt.want)
		}
	}
}

func TestEventFilter(t *testing.T) {
	msg := Event{Type: "m.room.message", Sender: "@a:x", Content: json.RawMessage(`{"body":"hi"}`)}
	img := Event{Type: "m.room.message", Sender: "@b:x", Content: json.RawMessage(`{"url":"mxc://x/y"}`)}
	name := Event{Type: "m.room.name", Sender: "@a:x", Content: json.RawMessage(`{}`)}
	tests := []struct {
		filter string
		want   [3]bool // msg, img, name
	}{
		{``, [3]bool{true, true, true}},
		{`{"types":[]}`, [3]bool{false, false, false}},
		{`{"types":["m.room.*"],"not_types":["m.room.name"]}`, [3]bool{true, true, false}},
		{`{"senders":["@a:x"]}`, [3]bool{true, false, true}},
		{`{"not_senders":["@a:x"]}`, [3]bool{false, true, false}},
		{`{"contains_url":true}`, [3]bool{false, true, false}},
		{`{"contains_url":false}`, [3]bool{true, false, true}},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter)
		if err != nil {
			t.Fatalf("%s: %v", tt.filter, err)
		}
		for i, e := range []Event{msg, img, name} {
			if got := f.Allows(e); got != tt.want[i] {
				t.Errorf("filter %s, event %d: %v, want %v", tt.filter, i, got, tt.want[i])
			}
		}
	}
	if _, err := ParseFilter(`{"limit":-1}`); err == nil {
		t.Error("negative limit accepted")
	}
	if _, err := ParseFilter(`{`); err == nil {
		t.Error("bad JSON accepted")
	}
}
