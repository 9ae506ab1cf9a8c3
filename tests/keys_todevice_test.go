package tests

import (
	"encoding/json"
	"testing"
)

// TestSendToDevice: messages reach each named device once, "*" reaches
// every device of the user, a retried transaction id sends nothing more,
// and remote or unknown targets do not fail the request.
func TestSendToDevice(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		bob1 := s.Register("bob")
		bob2 := s.Login(bob1.UserID)
		st := storeOf(t, s)
		bid := bob1.UserID.String()
		send := func(txn string, messages map[string]any) Response {
			return s.Do("PUT", "/_matrix/client/v3/sendToDevice/m.test/"+txn, alice.AccessToken, map[string]any{"messages": messages})
		}
		inbox := func(device string) []map[string]any {
			msgs, err := st.Inbox(ctx(), bid, device, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]map[string]any, len(msgs))
			for i, m := range msgs {
				if err := json.Unmarshal([]byte(m.JSON), &out[i]); err != nil {
					t.Fatal(err)
				}
			}
			return out
		}
		send("t1", map[string]any{bid: map[string]any{"*": map[string]any{"n": 1}}}).Expect(t, 200, "")
		send("t1", map[string]any{bid: map[string]any{"*": map[string]any{"n": 1}}}).Expect(t, 200, "")
		send("t2", map[string]any{
			bid:                     map[string]any{bob2.DeviceID.String(): map[string]any{"n": 2}, "NOSUCH": map[string]any{"n": 3}},
			"@carol:remote.example": map[string]any{"X": map[string]any{"n": 4}},
		}).Expect(t, 200, "")
		for dev, want := range map[string][]float64{bob1.DeviceID.String(): {1}, bob2.DeviceID.String(): {1, 2}} {
			got := inbox(dev)
			if len(got) != len(want) {
				t.Fatalf("%s inbox: %v", dev, got)
			}
			for i, m := range got {
				if m["content"].(map[string]any)["n"] != want[i] || m["sender"] != alice.UserID.String() || m["type"] != "m.test" {
					t.Fatalf("%s inbox: %v", dev, got)
				}
			}
		}
		send("t3", map[string]any{bid: map[string]any{"*": "not an object"}}).Expect(t, 400, "M_BAD_JSON")
		send("t4", map[string]any{"not-a-user": map[string]any{"*": map[string]any{}}}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("PUT", "/_matrix/client/v3/sendToDevice/m.test/t5", alice.AccessToken, map[string]any{}).Expect(t, 400, "M_MISSING_PARAM")
		// The refused requests queued nothing.
		if got := inbox(bob1.DeviceID.String()); len(got) != 1 {
			t.Fatalf("refused requests queued messages: %v", got)
		}
	})
}
