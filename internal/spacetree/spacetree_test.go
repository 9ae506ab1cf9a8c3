package spacetree

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestSortChildren is the spec's example of ordering a space's children,
// with ties on the order key and on the timestamp.
func TestSortChildren(t *testing.T) {
	child := func(roomID string, ts int64, content string) Child {
		return Child{StateKey: roomID, OriginServerTS: ts, Content: json.RawMessage(content)}
	}
	children := []Child{
		child("!b:x", 1640341000000, `{"order": " ", "via": ["x"]}`),
		child("!a:x", 1640141000000, `{"order": "aaaa", "via": ["x"]}`),
		child("!c:x", 1640841000000, `{"order": "first", "via": ["x"]}`),
		child("!e:x", 1640641000000, `{"via": ["x"]}`),
		child("!d:x", 1640741000000, `{"via": ["x"]}`),
		// Same order key: by timestamp; same timestamp: by room id.
		child("!g:x", 2, `{"order": "aaaa", "via": ["x"]}`),
		child("!f:x", 1640741000000, `{"via": ["x"]}`),
		// Invalid order keys count as none.
		child("!h:x", 1, `{"order": "`+strings.Repeat("z", 51)+`", "via": ["x"]}`),
		child("!i:x", 3, `{"order": "\u00e9t\u00e9", "via": ["x"]}`),
		child("!j:x", 4, `{"order": 5, "via": ["x"]}`),
	}
	SortChildren(children)
	var got []string
	for _, c := range children {
		got = append(got, c.StateKey)
	}
	want := []string{"!b:x", "!g:x", "!a:x", "!c:x", "!h:x", "!i:x", "!j:x", "!e:x", "!d:x", "!f:x"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestValidChild(t *testing.T) {
	for _, c := range []struct {
		stateKey, content string
		suggestedOnly     bool
		want              bool
	}{
		{"!a:x", `{"via": ["x"]}`, false, true},
		{"!a:x", `{"via": []}`, false, false},
		{"!a:x", `{}`, false, false},
		{"!a:x", `{"via": "x"}`, false, false},
		{"#a:x", `{"via": ["x"]}`, false, false},
		{"!a:x", `{"via": ["x"]}`, true, false},
		{"!a:x", `{"via": ["x"], "suggested": true}`, true, true},
		{"!a:x", `{"via": ["x"], "suggested": "yes"}`, true, false},
	} {
		var content map[string]json.RawMessage
		_ = json.Unmarshal([]byte(c.content), &content)
		if got := ValidChild(c.stateKey, content, c.suggestedOnly); got != c.want {
			t.Errorf("%s %s suggestedOnly=%v: %v, want %v", c.stateKey, c.content, c.suggestedOnly, got, c.want)
		}
	}
}
