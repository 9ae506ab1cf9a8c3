package storage_test

import (
	"context"
	"slices"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func inbox(t *testing.T, s *storage.Store, user, device string) []string {
	t.Helper()
	msgs, err := s.Inbox(context.Background(), user, device, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.JSON)
	}
	return out
}

func TestSendToDevice(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		openDevice(t, s, "@b:x", "B1")
		openDevice(t, s, "@b:x", "B2")
		openDevice(t, s, "@c:x", "C1")
		txn := storage.ToDeviceTxn{UserID: "@a:x", DeviceID: "A", TxnID: "t1"}
		msgs := []storage.ToDeviceMessage{
			{UserID: "@b:x", DeviceID: storage.AllDevices, JSON: "m1"},
			{UserID: "@c:x", DeviceID: "C1", JSON: "m2"},
			{UserID: "@c:x", DeviceID: "C1", JSON: "m3"},
			{UserID: "@c:x", DeviceID: "GONE", JSON: "m4"},
			{UserID: "@nobody:x", DeviceID: "N", JSON: "m5"},
		}
		rcpt, dup, err := s.SendToDevice(ctx, txn, msgs)
		if err != nil || dup || !slices.Equal(rcpt, []string{"@b:x", "@c:x"}) {
			t.Fatalf("send: %v %v %v", rcpt, dup, err)
		}
		// A retry of the transaction sends nothing.
		if rcpt, dup, err = s.SendToDevice(ctx, txn, msgs); err != nil || !dup || rcpt != nil {
			t.Fatalf("retry: %v %v %v", rcpt, dup, err)
		}
		// The same txn id from another device is another transaction.
		other := txn
		other.DeviceID = "A2"
		if _, dup, err = s.SendToDevice(ctx, other, msgs[2:3]); err != nil || dup {
			t.Fatalf("other device: %v %v", dup, err)
		}
		for dev, want := range map[string][]string{"B1": {"m1"}, "B2": {"m1"}} {
			if got := inbox(t, s, "@b:x", dev); !slices.Equal(got, want) {
				t.Errorf("%s inbox %v, want %v", dev, got, want)
			}
		}
		if got := inbox(t, s, "@c:x", "C1"); !slices.Equal(got, []string{"m2", "m3", "m3"}) {
			t.Errorf("C1 inbox %v: want the messages in order, each once per transaction", got)
		}
	})
}
