package spaces

import (
	"testing"
)

func TestToken(t *testing.T) {
	q := query{Root: "!space:x", SuggestedOnly: true, MaxDepth: 3, Skip: 7}
	got, err := parseToken(q.token())
	if err != nil || got != q {
		t.Fatalf("round trip: %+v %v, want %+v", got, err, q)
	}
	for _, bad := range []string{"", "!!", "e30", q.token() + "x"} {
		if _, err := parseToken(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
