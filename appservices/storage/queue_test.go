package storage

import (
	"context"
	"fmt"
	"testing"

	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func TestQueue(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := New(db)
		if _, seq, err := s.Ensure(ctx, "bridge"); err != nil || seq != 0 {
			t.Fatalf("ensure: %v %d", err, seq)
		}
		var items []Item
		for i := 0; i < 5; i++ {
			items = append(items, Item{Kind: KindPDU, Body: fmt.Sprintf(`{"n":%d}`, i)})
		}
		storagetest.Must(t, s.Enqueue(ctx, "bridge", 7, items), "enqueue")
		storagetest.Must(t, s.Enqueue(ctx, "bridge", 3, nil), "enqueue an older position")
		if _, seq, _ := s.Ensure(ctx, "bridge"); seq != 7 {
			t.Fatalf("last seq %d, want 7 (never moves back)", seq)
		}
		txn, err := s.NextTxn(ctx, "bridge", 3)
		if err != nil || txn.ID != 1 || len(txn.Items) != 3 || txn.Items[0].Body != `{"n":0}` {
			t.Fatalf("first txn %+v %v", txn, err)
		}
		// Events queued meanwhile do not join a formed transaction, and a
		// retry gets the same one.
		storagetest.Must(t, s.Enqueue(ctx, "bridge", 8, []Item{{Kind: KindEDU, Body: `{"n":5}`}}), "enqueue")
		again, err := s.NextTxn(ctx, "bridge", 10)
		if err != nil || again.ID != 1 || len(again.Items) != 3 {
			t.Fatalf("retry %+v %v", again, err)
		}
		st, err := s.QueueState(ctx, "bridge")
		if err != nil || st.Pending != 6 || st.PendingTxn != 1 {
			t.Fatalf("state %+v %v", st, err)
		}
		storagetest.Must(t, s.Failed(ctx, "bridge", "connection refused"), "failed")
		storagetest.Must(t, s.Sent(ctx, "bridge", 1), "sent")
		next, err := s.NextTxn(ctx, "bridge", 10)
		if err != nil || next.ID != 2 || len(next.Items) != 3 || next.Items[2].Kind != KindEDU || next.Items[0].Body != `{"n":3}` {
			t.Fatalf("second txn %+v %v", next, err)
		}
		storagetest.Must(t, s.Sent(ctx, "bridge", 2), "sent")
		if empty, err := s.NextTxn(ctx, "bridge", 10); err != nil || len(empty.Items) != 0 {
			t.Fatalf("empty queue %+v %v", empty, err)
		}
		st, err = s.QueueState(ctx, "bridge")
		if err != nil || st.Pending != 0 || st.LastSuccessTS == 0 || st.LastError != "connection refused" {
			t.Fatalf("state %+v %v", st, err)
		}
	})
}
