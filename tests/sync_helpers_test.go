package tests

import (
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// syncer follows one client's /sync from token to token.
type syncer struct {
	t      testing.TB
	c      *mautrix.Client
	filter string
	since  string
}

// newSyncer starts following c's sync with filter (inline JSON or "") by
// an initial sync, whose response it returns.
func newSyncer(t testing.TB, c *mautrix.Client, filter string) (*syncer, *mautrix.RespSync) {
	t.Helper()
	s := &syncer{t: t, c: c, filter: filter}
	return s, s.next(0)
}

// next syncs from the last token, long-polling up to timeout.
func (s *syncer) next(timeout time.Duration) *mautrix.RespSync {
	s.t.Helper()
	resp, err := s.c.FullSyncRequest(ctx(), mautrix.ReqSync{Since: s.since, Timeout: int(timeout.Milliseconds()), FilterID: s.filter})
	if err != nil {
		s.t.Fatalf("sync of %s since %q: %v", s.c.UserID, s.since, err)
	}
	if resp.NextBatch == "" {
		s.t.Fatalf("sync of %s: no next_batch", s.c.UserID)
	}
	s.since = resp.NextBatch
	return resp
}

// until syncs until cond holds on a response's room (long-polling), or
// fails the test after a few seconds.
func (s *syncer) until(what string, cond func(*mautrix.RespSync) bool) *mautrix.RespSync {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp := s.next(2 * time.Second)
		if cond(resp) {
			return resp
		}
	}
	s.t.Fatalf("%s: never came in %s's sync", what, s.c.UserID)
	return nil
}

// timelineBodies returns the bodies of the text messages of room's
// timeline in resp.
func timelineBodies(resp *mautrix.RespSync, room id.RoomID) []string {
	jr, ok := resp.Rooms.Join[room]
	if !ok {
		return nil
	}
	parseAll(jr.Timeline.Events)
	return bodies(jr.Timeline.Events)
}

// parseAll parses the contents of raw events as mautrix leaves them.
func parseAll(evs []*event.Event) {
	for _, e := range evs {
		_ = e.Content.ParseRaw(e.Type)
	}
}

// ephemeralOf returns room's ephemeral events of type typ in resp.
func ephemeralOf(resp *mautrix.RespSync, room id.RoomID, typ string) []map[string]any {
	jr, ok := resp.Rooms.Join[room]
	if !ok {
		return nil
	}
	var out []map[string]any
	for _, e := range jr.Ephemeral.Events {
		if e.Type.Type != typ {
			continue
		}
		var m map[string]any
		raw, _ := json.Marshal(e.Content.Raw)
		_ = json.Unmarshal(raw, &m)
		out = append(out, m)
	}
	return out
}
