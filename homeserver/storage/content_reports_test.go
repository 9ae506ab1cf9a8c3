package storage_test

import (
	"context"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func TestContentReports(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		reason, score := "spam", int64(-100)
		in := []storage.ContentReport{
			{UserID: "@a:x", RoomID: "!r1:x", EventID: "$e1", Reason: &reason, Score: &score},
			{UserID: "@b:x", RoomID: "!r2:x"},
			{UserID: "@c:x", RoomID: "!r1:x", Reason: &reason},
		}
		var ids []int64
		for _, r := range in {
			id, err := s.AddContentReport(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		all, err := s.ContentReports(ctx, "", 0, 10)
		if err != nil || len(all) != 3 {
			t.Fatalf("all reports: %+v %v", all, err)
		}
		for i, r := range all {
			if r.ID != ids[i] || r.UserID != in[i].UserID || r.RoomID != in[i].RoomID || r.EventID != in[i].EventID || r.ReceivedTS == 0 {
				t.Errorf("report %d: %+v, want %+v with id %d", i, r, in[i], ids[i])
			}
			if (r.Reason == nil) != (in[i].Reason == nil) || r.Reason != nil && *r.Reason != *in[i].Reason {
				t.Errorf("report %d reason: %v", i, r.Reason)
			}
			if (r.Score == nil) != (in[i].Score == nil) || r.Score != nil && *r.Score != *in[i].Score {
				t.Errorf("report %d score: %v", i, r.Score)
			}
		}
		room1, err := s.ContentReports(ctx, "!r1:x", 0, 10)
		if err != nil || len(room1) != 2 || room1[0].UserID != "@a:x" || room1[1].UserID != "@c:x" {
			t.Fatalf("reports of !r1:x: %+v %v", room1, err)
		}
		page, err := s.ContentReports(ctx, "", ids[0], 1)
		if err != nil || len(page) != 1 || page[0].ID != ids[1] {
			t.Fatalf("page after the first: %+v %v", page, err)
		}
	})
}
