package tests

import (
	"net/url"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestMessagesPaging sends 25 messages and reads them back with /messages
// in both directions, page by page, with the tokens each page gives; then
// from and to, filters, /event and /context.
func TestMessagesPaging(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		want := texts("message", 25)
		ids := map[string]id.EventID{}
		for i, body := range want {
			sender := alice
			if i%5 == 4 {
				sender = bob
			}
			ids[body] = sendText(t, sender, room, body)
		}

		got, pages := allMessages(t, alice, room, mautrix.DirectionBackward, 10)
		if !sameList(got, reversed(want)) {
			t.Fatalf("backward: got %q", got)
		}
		if pages < 3 {
			t.Errorf("backward: %d pages of 10 for 25 messages and the room's state", pages)
		}
		got, _ = allMessages(t, alice, room, mautrix.DirectionForward, 7)
		if !sameList(got, want) {
			t.Fatalf("forward: got %q", got)
		}

		// A backward page's end continues backward, and going forward
		// from it gives back what the page held.
		first, err := alice.Messages(ctx(), room, "", "", mautrix.DirectionBackward, nil, 5)
		if err != nil || !sameList(bodies(first.Chunk), reversed(want[20:])) || first.End == "" || first.Start == "" {
			t.Fatalf("first backward page: %q end=%q %v", bodies(first.Chunk), first.End, err)
		}
		second, err := alice.Messages(ctx(), room, first.End, "", mautrix.DirectionBackward, nil, 5)
		if err != nil || !sameList(bodies(second.Chunk), reversed(want[15:20])) {
			t.Fatalf("second backward page: %q %v", bodies(second.Chunk), err)
		}
		fwd, err := alice.Messages(ctx(), room, second.End, "", mautrix.DirectionForward, nil, 10)
		if err != nil || !sameList(bodies(fwd.Chunk), want[15:25]) {
			t.Fatalf("forward from a backward token: %q %v", bodies(fwd.Chunk), err)
		}
		// to stops the paging.
		bounded, err := alice.Messages(ctx(), room, first.Start, second.End, mautrix.DirectionBackward, nil, 50)
		if err != nil || !sameList(bodies(bounded.Chunk), reversed(want[15:])) {
			t.Fatalf("from/to: %q %v", bodies(bounded.Chunk), err)
		}
		// Default limit is 10.
		def := s.Do("GET", roomPath(room, "messages")+"?dir=b", alice.AccessToken, nil).Expect(t, 200, "")
		if n := len(rawEvents(t, def.Body["chunk"])); n != 10 {
			t.Errorf("default limit: %d events", n)
		}

		// Filters: senders, not_types, types with a wildcard.
		onlyBob, err := alice.Messages(ctx(), room, "", "", mautrix.DirectionBackward, &mautrix.FilterPart{Senders: []id.UserID{bob.UserID}, Types: []event.Type{event.EventMessage}}, 50)
		if err != nil || !sameList(bodies(onlyBob.Chunk), []string{"message 25", "message 20", "message 15", "message 10", "message 5"}) {
			t.Fatalf("senders filter: %q %v", bodies(onlyBob.Chunk), err)
		}
		filter := url.QueryEscape(`{"types":["m.room.*"],"not_types":["m.room.message"]}`)
		r := s.Do("GET", roomPath(room, "messages")+"?dir=f&limit=50&filter="+filter, alice.AccessToken, nil).Expect(t, 200, "")
		evs := rawEvents(t, r.Body["chunk"])
		if len(evs) == 0 {
			t.Fatal("types filter: no state events")
		}
		for _, e := range evs {
			if typ, _ := e["type"].(string); !strings.HasPrefix(typ, "m.room.") || typ == "m.room.message" {
				t.Errorf("types filter let %s through", typ)
			}
		}
		// lazy_load_members gives the senders' member events.
		lazy, err := alice.Messages(ctx(), room, "", "", mautrix.DirectionBackward, &mautrix.FilterPart{LazyLoadMembers: true}, 3)
		if err != nil || len(lazy.State) != 2 {
			t.Fatalf("lazy-loaded members: %d %v", len(lazy.State), err)
		}

		// /event, with the client format's fields.
		e := s.Do("GET", roomPath(room, "event", string(ids["message 7"])), bob.AccessToken, nil).Expect(t, 200, "")
		content, _ := e.Body["content"].(map[string]any)
		if e.Body["event_id"] != string(ids["message 7"]) || e.Body["room_id"] != string(room) || e.Body["sender"] != string(alice.UserID) ||
			e.Body["type"] != "m.room.message" || content["body"] != "message 7" || jsonNumber(e.Body["origin_server_ts"]) <= 0 {
			t.Fatalf("event: %s", e.Raw)
		}
		if _, isState := e.Body["state_key"]; isState {
			t.Errorf("a message has a state_key: %s", e.Raw)
		}
		if unsigned, _ := e.Body["unsigned"].(map[string]any); unsigned == nil || jsonNumber(unsigned["age"]) < 0 {
			t.Errorf("event without unsigned.age: %s", e.Raw)
		}
		s.Do("GET", roomPath(room, "event", "$nosuchevent"), alice.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")

		// /context: half the limit before, half after, and tokens.
		c, err := alice.Context(ctx(), room, ids["message 12"], nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		if c.Event.ID != ids["message 12"] || !sameList(bodies(c.EventsBefore), []string{"message 11", "message 10"}) ||
			!sameList(bodies(c.EventsAfter), []string{"message 13", "message 14"}) || len(c.State) == 0 {
			t.Fatalf("context: event %s before %q after %q state %d", c.Event.ID, bodies(c.EventsBefore), bodies(c.EventsAfter), len(c.State))
		}
		back, err := alice.Messages(ctx(), room, c.Start, "", mautrix.DirectionBackward, nil, 2)
		if err != nil || !sameList(bodies(back.Chunk), []string{"message 9", "message 8"}) {
			t.Fatalf("paging back from context start: %q %v", bodies(back.Chunk), err)
		}
		ahead, err := alice.Messages(ctx(), room, c.End, "", mautrix.DirectionForward, nil, 2)
		if err != nil || !sameList(bodies(ahead.Chunk), []string{"message 15", "message 16"}) {
			t.Fatalf("paging on from context end: %q %v", bodies(ahead.Chunk), err)
		}

		for _, tc := range []struct{ name, query, errcode string }{
			{"no dir", "", "M_MISSING_PARAM"},
			{"bad dir", "?dir=x", "M_INVALID_PARAM"},
			{"bad token", "?dir=b&from=tomorrow", "M_INVALID_PARAM"},
			{"bad limit", "?dir=b&limit=-3", "M_INVALID_PARAM"},
			{"bad filter", "?dir=b&filter=%7B", "M_NOT_JSON"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s.Do("GET", roomPath(room, "messages")+tc.query, alice.AccessToken, nil).Expect(t, 400, tc.errcode)
			})
		}
	})
}

// TestMessagesTxnIdempotency checks that a transaction id sends once: a
// retry (even a concurrent one) gets the same event id and the room holds
// one event; another device's same txn id is another event; only the
// sending device sees unsigned.transaction_id.
func TestMessagesTxnIdempotency(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		phone := s.Login(alice.UserID)
		room := createRoom(t, s, alice, map[string]any{})
		send := func(c *mautrix.Client, txn, body string) id.EventID {
			t.Helper()
			resp, err := c.SendMessageEvent(ctx(), room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": body}, mautrix.ReqSendEvent{TransactionID: txn})
			if err != nil {
				t.Fatalf("send %s: %v", txn, err)
			}
			return resp.EventID
		}
		first := send(alice, "txn1", "once")
		if again := send(alice, "txn1", "once"); again != first {
			t.Fatalf("retry got %s, first %s", again, first)
		}

		// Ten concurrent requests with one txn id: one event.
		var wg sync.WaitGroup
		got := make([]id.EventID, 10)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := alice.SendMessageEvent(ctx(), room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "racing"}, mautrix.ReqSendEvent{TransactionID: "race"})
				if err != nil {
					t.Errorf("concurrent send: %v", err)
					return
				}
				got[i] = resp.EventID
			}()
		}
		wg.Wait()
		for _, e := range got {
			if e != got[0] {
				t.Fatalf("concurrent retries got different events: %v", got)
			}
		}

		// The same txn id from another device, or on another endpoint
		// (another event type), is another request.
		other := send(phone, "txn1", "from the phone")
		if other == first {
			t.Fatal("another device's txn id returned the first device's event")
		}
		resp, err := alice.SendMessageEvent(ctx(), room, event.Type{Type: "com.example.ping", Class: event.MessageEventType}, map[string]any{}, mautrix.ReqSendEvent{TransactionID: "txn1"})
		if err != nil || resp.EventID == first {
			t.Fatalf("same txn id for another event type: %v %v", resp, err)
		}

		all, _ := allMessages(t, alice, room, mautrix.DirectionForward, 100)
		if !sameList(all, []string{"once", "racing", "from the phone"}) {
			t.Fatalf("room holds %q", all)
		}

		// transaction_id only for the sending device.
		for c, want := range map[*mautrix.Client]string{alice: "txn1", phone: ""} {
			e := s.Do("GET", roomPath(room, "event", string(first)), c.AccessToken, nil).Expect(t, 200, "")
			unsigned, _ := e.Body["unsigned"].(map[string]any)
			if got, _ := unsigned["transaction_id"].(string); got != want {
				t.Errorf("device %s: transaction_id %q, want %q", c.DeviceID, got, want)
			}
		}
		msgs, err := alice.Messages(ctx(), room, "", "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range msgs.Chunk {
			if e.ID == first {
				found = e.Unsigned.TransactionID == "txn1"
			}
		}
		if !found {
			t.Error("/messages: no transaction_id on the device's own event")
		}
	})
}

// TestSendRefusals checks what /send refuses: non-members, oversized
// events, content that is not a JSON object.
func TestSendRefusals(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, mallory := s.Register("alice"), s.Register("mallory")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		send := func(c *mautrix.Client, txn string, body any) Response {
			return s.Do("PUT", roomPath(room, "send", "m.room.message", txn), c.AccessToken, body)
		}
		send(mallory, "t1", map[string]any{"body": "hi"}).Expect(t, 403, "M_FORBIDDEN")
		send(alice, "t2", map[string]any{"body": strings.Repeat("x", 70000)}).Expect(t, 413, "M_TOO_LARGE")
		// Content under the limit, but the whole event over it: the
		// roomserver measures the PDU.
		send(alice, "t3", map[string]any{"body": strings.Repeat("x", 65400)}).Expect(t, 413, "M_TOO_LARGE")
		send(alice, "t4", `["not", "an", "object"]`).Expect(t, 400, "M_BAD_JSON")
		send(alice, "t5", `{"body":`).Expect(t, 400, "M_NOT_JSON")
		s.Do("PUT", roomPath("!nosuchroom:"+serverName, "send", "m.room.message", "t6"), alice.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
		// A refused request leaves no transaction behind: the same txn id
		// sends once the request is valid.
		send(alice, "t2", map[string]any{"body": "small now"}).Expect(t, 200, "")
		got, _ := allMessages(t, alice, room, mautrix.DirectionForward, 100)
		if !sameList(got, []string{"small now"}) {
			t.Fatalf("room holds %q", got)
		}
	})
}
