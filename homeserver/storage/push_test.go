package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func ruleIDs(rules []storage.StoredPushRule, kind string) []string {
	var out []string
	for _, r := range rules {
		if r.Kind == kind {
			out = append(out, r.RuleID)
		}
	}
	return out
}

func TestPushRulesOrder(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		const u = "@a:x"
		body := json.RawMessage(`{"actions":["notify"]}`)
		put := func(id, before, after string) error {
			return s.PutPushRule(ctx, u, "override", id, body, before, after)
		}
		for _, step := range []struct {
			id, before, after string
			want              []string
		}{
			{"a", "", "", []string{"a"}},
			{"b", "", "", []string{"b", "a"}},            // new rules go first
			{"c", "a", "", []string{"b", "c", "a"}},      // before a
			{"d", "", "b", []string{"b", "d", "c", "a"}}, // after b
			{"e", "", "a", []string{"b", "d", "c", "a", "e"}},
			{"a", "b", "", []string{"a", "b", "d", "c", "e"}}, // moves
		} {
			if err := put(step.id, step.before, step.after); err != nil {
				t.Fatal(err)
			}
			rules, _, err := s.PushRules(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if got := ruleIDs(rules, "override"); !reflect.DeepEqual(got, step.want) {
				t.Fatalf("after %+v: %v", step, got)
			}
		}
		if err := put("f", "nope", ""); !errors.Is(err, storage.ErrPushRuleAnchor) {
			t.Fatalf("unknown anchor: %v", err)
		}
		// An anchor of another kind is unknown too.
		if err := s.PutPushRule(ctx, u, "underride", "g", body, "a", ""); !errors.Is(err, storage.ErrPushRuleAnchor) {
			t.Fatalf("anchor of another kind: %v", err)
		}
		off := false
		if err := s.UpdatePushRule(ctx, u, "override", "d", nil, &off); err != nil {
			t.Fatal(err)
		}
		// Replacing keeps the enabled flag.
		if err := s.PutPushRule(ctx, u, "override", "d", json.RawMessage(`{"actions":[]}`), "", ""); err != nil {
			t.Fatal(err)
		}
		rules, _, _ := s.PushRules(ctx, u)
		if rules[0].RuleID != "d" || rules[0].Enabled || string(rules[0].Rule) != `{"actions":[]}` {
			t.Fatalf("replaced rule: %+v", rules[0])
		}
		if err := s.UpdatePushRule(ctx, u, "override", "zz", nil, &off); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("update missing: %v", err)
		}
		if err := s.DeletePushRule(ctx, u, "override", "d"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePushRule(ctx, u, "override", "d"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}

		on := true
		if err := s.OverridePushRule(ctx, u, ".m.rule.master", &on, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.OverridePushRule(ctx, u, ".m.rule.master", nil, json.RawMessage(`["notify"]`)); err != nil {
			t.Fatal(err)
		}
		rs, ov, err := s.PushRules(ctx, u)
		if err != nil || len(ov) != 1 || ov[0].Enabled == nil || !*ov[0].Enabled || string(ov[0].Actions) != `["notify"]` {
			t.Fatalf("overrides: %+v %v", ov, err)
		}
		// Many users at once: the same, and nothing for users without.
		many, manyOv, err := s.PushRulesOfUsers(ctx, []string{u, "@nobody:x"})
		if err != nil || !reflect.DeepEqual(many[u], rs) || !reflect.DeepEqual(manyOv[u], ov) || len(many) != 1 || len(manyOv) != 1 {
			t.Fatalf("PushRulesOfUsers: %+v %+v %v", many, manyOv, err)
		}
	})
}

func TestPrunePushActions(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		const u, room = "@a:x", "!r:x"
		old := s.Now().Add(-48 * time.Hour).UnixMilli()
		act := func(ev string, pos int64, thread string, hl bool, ts int64) storage.PushAction {
			return storage.PushAction{UserID: u, RoomID: room, EventID: ev, StreamPos: pos, ThreadID: thread, Highlight: hl, Actions: json.RawMessage(`[]`), TS: ts}
		}
		if _, err := s.AddPushActions(ctx, []storage.PushAction{
			act("$read", 1, "main", false, old), act("$readhl", 2, "main", true, old), act("$thread", 3, "$t", false, old),
			act("$unread", 5, "main", false, old), act("$recent", 4, "main", false, s.Now().UnixMilli()),
		}); err != nil {
			t.Fatal(err)
		}
		// Read up to 4 in the main timeline (a threaded receipt "main").
		if _, err := s.PutReceipt(ctx, storage.Receipt{RoomID: room, UserID: u, Type: "m.read", ThreadID: "main", EventID: "$recent", EventStreamPos: 4}); err != nil {
			t.Fatal(err)
		}
		n, err := s.PrunePushActions(ctx, s.Now().Add(-24*time.Hour).UnixMilli(), old-1, 100)
		if err != nil || n != 1 {
			t.Fatalf("pruned %d: %v", n, err)
		}
		left, _ := s.PushActions(ctx, u, 0, 100, false)
		var ids []string
		for _, a := range left {
			ids = append(ids, a.EventID)
		}
		if !reflect.DeepEqual(ids, []string{"$unread", "$recent", "$thread", "$readhl"}) {
			t.Fatalf("left: %v", ids)
		}
		// Old enough, highlights go too.
		if n, err := s.PrunePushActions(ctx, 0, s.Now().UnixMilli()+1000, 100); err != nil || n != 4 {
			t.Fatalf("pruned by age %d: %v", n, err)
		}
	})
}

func TestPushActionsAndQueue(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		const u, room = "@a:x", "!r:x"
		if err := s.SetPusher(ctx, storage.Pusher{UserID: u, AppID: "app", PushKey: "k1", Kind: "http",
			Data: json.RawMessage(`{"url":"https://gw/_matrix/push/v1/notify"}`), DeviceID: "D"}, false); err != nil {
			t.Fatal(err)
		}
		act := func(ev string, pos int64, thread string, hl bool) storage.PushAction {
			return storage.PushAction{UserID: u, RoomID: room, EventID: ev, StreamPos: pos, ThreadID: thread, Highlight: hl, Actions: json.RawMessage(`["notify"]`)}
		}
		actions := []storage.PushAction{act("$1", 1, "main", false), act("$2", 2, "$t", true), act("$3", 3, "main", true), act("$4", 4, "$t", false)}
		queued, err := s.AddPushActions(ctx, actions)
		if err != nil || !queued {
			t.Fatalf("add: %v %v", queued, err)
		}
		// Replayed: nothing new, nothing queued again.
		if queued, err := s.AddPushActions(ctx, actions[:2]); err != nil || queued {
			t.Fatalf("replay: %v %v", queued, err)
		}
		for _, tc := range []struct {
			unthreaded int64
			threads    map[string]int64
			total      storage.Counts
			per        map[string]storage.Counts
		}{
			{0, nil, cnt(4, 2), map[string]storage.Counts{"main": cnt(2, 1), "$t": cnt(2, 1)}},
			{2, nil, cnt(2, 1), map[string]storage.Counts{"main": cnt(1, 1), "$t": cnt(1, 0)}},
			{0, map[string]int64{"$t": 4, "main": 1}, cnt(1, 1), map[string]storage.Counts{"main": cnt(1, 1)}},
			{3, map[string]int64{"$t": 1}, cnt(1, 0), map[string]storage.Counts{"$t": cnt(1, 0)}},
		} {
			total, per, err := s.UnreadCounts(ctx, u, room, tc.unthreaded, tc.threads)
			if err != nil {
				t.Fatal(err)
			}
			if total != tc.total || !reflect.DeepEqual(per, tc.per) {
				t.Errorf("unthreaded %d threads %v: %+v %+v, want %+v %+v", tc.unthreaded, tc.threads, total, per, tc.total, tc.per)
			}
		}
		page, err := s.PushActions(ctx, u, 0, 2, false)
		if err != nil || len(page) != 2 || page[0].EventID != "$4" || page[1].EventID != "$3" {
			t.Fatalf("first page: %+v %v", page, err)
		}
		page, _ = s.PushActions(ctx, u, page[1].StreamPos, 10, false)
		if len(page) != 2 || page[0].EventID != "$2" {
			t.Fatalf("second page: %+v", page)
		}
		page, _ = s.PushActions(ctx, u, 0, 10, true)
		if len(page) != 2 || page[0].EventID != "$3" || page[1].EventID != "$2" {
			t.Fatalf("highlights: %+v", page)
		}

		now := s.Now().UnixMilli()
		due, err := s.ClaimDuePushes(ctx, now, 1000, 10)
		if err != nil || len(due) != 4 || due[0].Action.EventID != "$1" || due[0].Pusher.PushKey != "k1" {
			t.Fatalf("due: %+v %v", due, err)
		}
		// Claimed rows are nobody else's until the lease ends.
		if again, _ := s.ClaimDuePushes(ctx, now, 1000, 10); len(again) != 0 {
			t.Fatalf("claimed twice: %+v", again)
		}
		if again, _ := s.ClaimDuePushes(ctx, now+1000, 1000, 10); len(again) != 4 {
			t.Fatalf("lease did not end: %+v", again)
		}
		if err := s.DeleteQueuedPush(ctx, due[0].ID); err != nil {
			t.Fatal(err)
		}
		later := s.Now().UnixMilli() + 60_000
		if err := s.DelayPusher(ctx, u, "app", "k1", later); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.ClaimDuePushes(ctx, s.Now().UnixMilli(), 1000, 10); len(due) != 0 {
			t.Fatalf("delayed pushes are due: %+v", due)
		}
		if next, ok, err := s.NextPushDue(ctx); err != nil || !ok || next != later {
			t.Fatalf("next due: %d %v %v", next, ok, err)
		}
		if due, _ := s.ClaimDuePushes(ctx, later, 1000, 10); len(due) != 3 || due[0].Attempts != 1 {
			t.Fatalf("due later: %+v", due)
		}

		// Another user takes the pushkey without append: the first loses
		// its pusher and its queue.
		if err := s.SetPusher(ctx, storage.Pusher{UserID: "@b:x", AppID: "app", PushKey: "k1", Kind: "http", Data: json.RawMessage(`{}`)}, false); err != nil {
			t.Fatal(err)
		}
		if ps, _ := s.Pushers(ctx, u); len(ps) != 0 {
			t.Fatalf("pusher not taken over: %+v", ps)
		}
		if _, ok, _ := s.NextPushDue(ctx); ok {
			t.Fatal("queue of a deleted pusher kept")
		}
		if err := s.SetPusher(ctx, storage.Pusher{UserID: u, AppID: "app", PushKey: "k1", Kind: "http", Data: json.RawMessage(`{}`)}, true); err != nil {
			t.Fatal(err)
		}
		if ps, _ := s.Pushers(ctx, "@b:x"); len(ps) != 1 {
			t.Fatalf("append removed another user's pusher: %+v", ps)
		}
		if _, err := s.Pusher(ctx, u, "app", "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("missing pusher: %v", err)
		}
		if err := s.DeletePusher(ctx, u, "app", "k1"); err != nil {
			t.Fatal(err)
		}
		if ps, _ := s.Pushers(ctx, u); len(ps) != 0 {
			t.Fatalf("deleted pusher: %+v", ps)
		}
	})
}

// cnt is a Counts literal.
func cnt(n, h int) storage.Counts { return storage.Counts{Notifications: n, Highlights: h} }
