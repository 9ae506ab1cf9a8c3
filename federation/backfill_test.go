package federation

import (
	"slices"
	"testing"
	"time"
)

type fakeEvent struct {
	id    string
	prevs []string
}

func (e fakeEvent) EventID() string        { return e.id }
func (e fakeEvent) PrevEventIDs() []string { return e.prevs }

func TestAncestors(t *testing.T) {
	// c ← b ← a, and d ← b: a fork; x stands beside, z is reached only
	// through an event not in the answer (y).
	dag := []fakeEvent{
		{"$a", nil}, {"$b", []string{"$a"}}, {"$c", []string{"$b"}}, {"$d", []string{"$b"}},
		{"$x", []string{"$a"}}, {"$z", nil}, {"$e", []string{"$c", "$d", "$y"}},
	}
	for _, tc := range []struct {
		from string
		want []string
	}{
		{"$c", []string{"$a", "$b", "$c"}},
		{"$e", []string{"$a", "$b", "$c", "$d", "$e"}},
		{"$a", []string{"$a"}},
		{"$unknown", nil},
	} {
		var got []string
		for _, e := range ancestors(tc.from, slices.Clone(dag)) {
			got = append(got, e.id)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ancestors of %s = %v, want %v", tc.from, got, tc.want)
		}
	}
}

func TestBackfillMisses(t *testing.T) {
	var m backfillMisses
	now := time.Unix(1000, 0)
	if m.recent("!r", "$a", now) {
		t.Fatal("a miss never recorded")
	}
	m.add("!r", "$a", now)
	if !m.recent("!r", "$a", now.Add(backfillRetry/2)) {
		t.Error("a recent miss not remembered")
	}
	if m.recent("!r", "$b", now) {
		t.Error("a miss from another event (the history moved) remembered")
	}
	if m.recent("!r", "$a", now.Add(backfillRetry)) {
		t.Error("a miss remembered past backfillRetry")
	}
	m.forget("!r")
	if m.recent("!r", "$a", now) {
		t.Error("a forgotten miss remembered")
	}
}
