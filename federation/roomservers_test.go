package federation

import (
	"context"
	"slices"
	"testing"
)

// TestRoomServers: the servers of a room are read once, and again after
// a change of its state; other rooms keep theirs.
func TestRoomServers(t *testing.T) {
	loads := map[string]int{}
	joined := map[string][]string{"!a": {"x"}, "!b": {"y"}}
	r := newRoomServers(func(_ context.Context, roomID string) ([]string, error) {
		loads[roomID]++
		return slices.Clone(joined[roomID]), nil
	})
	get := func(roomID string, want ...string) {
		t.Helper()
		got, err := r.get(context.Background(), roomID)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("servers of %s = %v, %v; want %v", roomID, got, err, want)
		}
	}
	get("!a", "x")
	get("!a", "x")
	get("!b", "y")
	joined["!a"] = []string{"x", "z"}
	get("!a", "x") // no change seen yet
	r.changed("!a")
	get("!a", "x", "z")
	get("!b", "y")
	if loads["!a"] != 2 || loads["!b"] != 1 {
		t.Errorf("loads = %v, want 2 for !a and 1 for !b", loads)
	}
}
