package tests

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRestartDuringBurstOfSends restarts the server while senders are
// sending: every send that got an event id is there afterwards, and no
// send that failed left an event behind.
func TestRestartDuringBurstOfSends(t *testing.T) {
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
		t.Logf("%d sends acknowledged, %d refused during the restart", len(acked), len(failed))
	})
}
