package tests

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRestartDuringBurstOfSends restarts the server while senders are
// sending: every send that got an event id is there afterwards, no send
// that failed left an event behind, and a client syncing through the
// restart with its since token saw every event exactly once (the sync
// positions given out before the restart are the same after it).
func TestRestartDuringBurstOfSends(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat"})
		token := alice.AccessToken

		const senders, perSender = 4, 40
		var mu sync.Mutex
		acked := map[string]string{} // body -> event id
		failed := map[string]bool{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < senders; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				<-start
				for i := 0; i < perSender; i++ {
					body := fmt.Sprintf("burst %d-%d", g, i)
					path := roomPath(room, "send", "m.room.message", body)
					r, err := s.tryDo("PUT", path, token, map[string]any{"msgtype": "m.text", "body": body})
					mu.Lock()
					if err == nil && r.Status == 200 {
						acked[body] = r.Body["event_id"].(string)
					} else {
						failed[body] = true
					}
					mu.Unlock()
					time.Sleep(2 * time.Millisecond)
				}
			}(g)
		}
		synced := newTimelineSyncer(s, token, room.String())
		go synced.run()
		close(start)
		time.Sleep(60 * time.Millisecond)
		s.Restart()
		wg.Wait()
		if len(acked) == 0 {
			t.Fatal("no send was acknowledged before the restart")
		}

		// Read the whole timeline back.
		seen := map[string]string{}
		from := ""
		for {
			path := roomPath(room, "messages") + "?dir=f&limit=100"
			if from != "" {
				path += "&from=" + from
			}
			r := s.Do("GET", path, token, nil).Expect(t, 200, "")
			for _, e := range r.Body["chunk"].([]any) {
				ev := e.(map[string]any)
				if c, ok := ev["content"].(map[string]any); ok {
					if b, ok := c["body"].(string); ok && strings.HasPrefix(b, "burst ") {
						seen[b] = ev["event_id"].(string)
					}
				}
			}
			end, _ := r.Body["end"].(string)
			if end == "" || len(r.Body["chunk"].([]any)) == 0 {
				break
			}
			from = end
		}
		for body, eventID := range acked {
			if seen[body] != eventID {
				t.Errorf("acknowledged %q (%s) is missing after the restart", body, eventID)
			}
		}
		for body := range failed {
			if _, ok := seen[body]; ok {
				t.Errorf("refused send %q left an event behind", body)
			}
		}
		got := synced.finish(t)
		for body, eventID := range acked {
			if n := got[eventID]; n != 1 {
				t.Errorf("acknowledged %q (%s) came %d times through /sync", body, eventID, n)
			}
		}
		t.Logf("%d sends acknowledged, %d refused during the restart", len(acked), len(failed))
	})
}

// timelineSyncer follows one room's timeline through incremental /sync,
// retrying across restarts with the same since token, and counts how many
// times each event came.
type timelineSyncer struct {
	s            *Server
	token, room  string
	stop, done   chan struct{}
	mu           sync.Mutex
	seen         map[string]int
	since        string
	limitedError string
}

func newTimelineSyncer(s *Server, token, room string) *timelineSyncer {
	return &timelineSyncer{s: s, token: token, room: room, stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]int{}}
}

// syncTimelineFilter asks for timelines long enough that a burst never
// comes limited.
const syncTimelineFilter = `{"room":{"timeline":{"limit":500}}}`

// once runs one /sync; it reports whether it got an answer.
func (y *timelineSyncer) once(timeout int) bool {
	path := fmt.Sprintf("/_matrix/client/v3/sync?timeout=%d&filter=%s", timeout, url.QueryEscape(syncTimelineFilter))
	if y.since != "" {
		path += "&since=" + url.QueryEscape(y.since)
	}
	r, err := y.s.tryDo("GET", path, y.token, nil)
	if err != nil || r.Status != 200 {
		time.Sleep(20 * time.Millisecond)
		return false
	}
	rooms, _ := r.Body["rooms"].(map[string]any)
	join, _ := rooms["join"].(map[string]any)
	if jr, ok := join[y.room].(map[string]any); ok {
		tl, _ := jr["timeline"].(map[string]any)
		y.mu.Lock()
		if limited, _ := tl["limited"].(bool); limited && y.since != "" {
			y.limitedError = "an incremental sync came limited: the test cannot tell what it missed"
		}
		evs, _ := tl["events"].([]any)
		for _, e := range evs {
			ev := e.(map[string]any)
			if c, ok := ev["content"].(map[string]any); ok {
				if b, ok := c["body"].(string); ok && strings.HasPrefix(b, "burst ") {
					y.seen[ev["event_id"].(string)]++
				}
			}
		}
		y.mu.Unlock()
	}
	y.since, _ = r.Body["next_batch"].(string)
	return true
}

// run syncs until finish is called.
func (y *timelineSyncer) run() {
	defer close(y.done)
	for {
		select {
		case <-y.stop:
			return
		default:
		}
		y.once(1000)
	}
}

// finish stops the loop, catches up with what is left, and returns the
// counts by event id.
func (y *timelineSyncer) finish(t *testing.T) map[string]int {
	t.Helper()
	close(y.stop)
	<-y.done
	for i := 0; i < 50 && !y.once(0); i++ {
	}
	if y.limitedError != "" {
		t.Fatal(y.limitedError)
	}
	return y.seen
}
