package roomserver_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// TestSendWithTxnIsExactlyOnce: a send retried with the same transaction
// id (concurrently, after a restart) returns the first event and sends
// nothing; another device, endpoint or id sends anew; the output event
// carries the id for its sender's device.
func TestSendWithTxnIsExactlyOnce(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		b := bustest.Embedded(t)
		key := testKey(t)
		rs := newRoomserver(t, db, b, key)
		roomID := publicRoom(t, rs, "12")
		txn := &api.Txn{DeviceID: "PHONE", Scope: "send " + roomID + " m.room.message", ID: "t1"}
		msg := func(body string, txn *api.Txn) api.ProtoEvent {
			return api.ProtoEvent{Type: "m.room.message", Sender: alice, Content: raw(map[string]string{"msgtype": "m.text", "body": body}), Txn: txn}
		}

		var wg sync.WaitGroup
		ids := make([]string, 8)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev, err := rs.Send(ctx(), roomID, msg("hello", txn))
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = ev.EventID
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("concurrent retries got different events: %v", ids)
			}
		}
		_ = rs.Stop(ctx())
		rs = newRoomserver(t, db, b, key)
		if ev, err := rs.Send(ctx(), roomID, msg("hello again", txn)); err != nil || ev.EventID != ids[0] {
			t.Fatalf("retry after a restart: %v %v, want %s", ev.EventID, err, ids[0])
		}
		others := []*api.Txn{
			{DeviceID: "LAPTOP", Scope: txn.Scope, ID: "t1"},
			{DeviceID: "PHONE", Scope: "send " + roomID + " m.reaction", ID: "t1"},
			{DeviceID: "PHONE", Scope: txn.Scope, ID: "t2"},
			nil,
		}
		for _, o := range others {
			ev, err := rs.Send(ctx(), roomID, msg("other", o))
			if err != nil || ev.EventID == ids[0] {
				t.Fatalf("send with %+v: %v %v", o, ev.EventID, err)
			}
		}
		tl, err := rs.Timeline(ctx(), roomID, api.TimelineEnd, api.Backward, 10)
		if err != nil {
			t.Fatal(err)
		}
		messages := 0
		for _, e := range tl {
			if contentOf(t, e)["msgtype"] == "m.text" {
				messages++
			}
		}
		if messages != 1+len(others) {
			t.Fatalf("%d messages in the room, want %d", messages, 1+len(others))
		}

		// The output event of the first send names its transaction.
		found := make(chan *api.Txn, 1)
		stop, err := b.Consume(ctx(), bus.StreamRoomserverOutput, "txn-test", "", func(_ context.Context, m bus.Message) error {
			var out api.OutputEvent
			if err := m.Decode(&out); err != nil {
				return err
			}
			if out.Event.EventID == ids[0] {
				found <- out.Txn
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		select {
		case got := <-found:
			if got == nil || *got != *txn {
				t.Fatalf("output transaction = %+v, want %+v", got, txn)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the first send never reached the bus")
		}
	})
}
