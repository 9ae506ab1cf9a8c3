package slidingsync

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

func intp(n int) *int { return &n }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		code httputil.Code
	}{
		{"empty", `{}`, ""},
		{"element x", `{"conn_id":"room-list","lists":{"all_rooms":{"ranges":[[0,19]],"required_state":[["m.room.name",""]],"timeline_limit":1,"filters":{}}}}`, ""},
		{"reversed range", `{"lists":{"l":{"ranges":[[5,1]]}}}`, httputil.CodeInvalidParam},
		{"short range", `{"lists":{"l":{"ranges":[[5]]}}}`, httputil.CodeInvalidParam},
		{"negative", `{"lists":{"l":{"ranges":[[-1,3]]}}}`, httputil.CodeInvalidParam},
		{"null list", `{"lists":{"l":null}}`, httputil.CodeBadJSON},
		{"bad pair", `{"lists":{"l":{"ranges":[],"required_state":[["m.room.name"]]}}}`, httputil.CodeInvalidParam},
		{"negative limit", `{"room_subscriptions":{"!a:b":{"timeline_limit":-1}}}`, httputil.CodeInvalidParam},
		{"not a room", `{"room_subscriptions":{"#a:b":{"timeline_limit":1}}}`, httputil.CodeInvalidParam},
		{"long conn id", fmt.Sprintf(`{"conn_id":%q}`, strings.Repeat("a", 100)), httputil.CodeInvalidParam},
	} {
		var r request
		if err := json.Unmarshal([]byte(tc.body), &r); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err := r.validate()
		var herr *httputil.Error
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.code != "" && (!errors.As(err, &herr) || herr.Code != tc.code):
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
}

func TestConfigKeyAndMerge(t *testing.T) {
	a := roomConfig{RequiredState: [][]string{{"m.room.name", ""}, {"m.room.member", "$LAZY"}}, TimelineLimit: intp(1)}
	b := roomConfig{RequiredState: [][]string{{"m.room.member", "$LAZY"}, {"m.room.name", ""}, {"m.room.name", ""}}, TimelineLimit: intp(1)}
	if a.key() != b.key() {
		t.Errorf("same config, different keys: %q %q", a.key(), b.key())
	}
	c := roomConfig{RequiredState: [][]string{{"m.room.topic", ""}}, TimelineLimit: intp(20)}
	m := a.merge(c)
	if m.limit() != 20 || len(m.RequiredState) != 3 || m.key() == a.key() {
		t.Errorf("merge: %+v", m)
	}
	if (roomConfig{TimelineLimit: intp(1000)}).limit() != maxTimelineLimit {
		t.Error("timeline limit not capped")
	}
}

func TestWanted(t *testing.T) {
	me := "@me:x"
	w := roomConfig{RequiredState: [][]string{
		{"m.room.name", ""}, {"m.room.member", "$LAZY"}, {"m.room.member", "$ME"}, {"m.space.child", "*"}, {"*", "special"},
	}}.wanted(me)
	lazy := map[string]bool{"@sender:x": true}
	for _, tc := range []struct {
		typ, key string
		want     bool
	}{
		{"m.room.name", "", true},
		{"m.room.topic", "", false},
		{"m.room.member", me, true},
		{"m.room.member", "@sender:x", true},
		{"m.room.member", "@other:x", false},
		{"m.space.child", "!a:x", true},
		{"org.example", "special", true},
		{"org.example", "", false},
	} {
		if got := w.keeps(tc.typ, tc.key, lazy); got != tc.want {
			t.Errorf("keeps(%s, %q) = %v", tc.typ, tc.key, got)
		}
	}
	all := roomConfig{RequiredState: [][]string{{"*", "*"}}}.wanted(me)
	if !all.keeps("anything", "at all", nil) {
		t.Error("[*, *] does not keep everything")
	}
}

func TestScope(t *testing.T) {
	want := map[string]roomConfig{"!a": {}, "!b": {}, "!c": {}}
	listsOf := map[string][]string{"!a": {"all"}, "!b": {"dms"}}
	subscribed := map[string]bool{"!c": true}
	b := &build{}
	lists := []string{"dms"}
	rooms := []string{"!a"}
	star := []string{"*"}
	for _, tc := range []struct {
		s    scoped
		want []string
	}{
		{scoped{}, []string{"!a", "!b", "!c"}},
		{scoped{Lists: &lists}, []string{"!b", "!c"}},
		{scoped{Lists: &[]string{}, Rooms: &rooms}, []string{"!a"}},
		{scoped{Lists: &[]string{}, Rooms: &star}, []string{"!c"}},
		{scoped{Lists: &[]string{}, Rooms: &[]string{}}, nil},
	} {
		got := b.scope(&tc.s, want, listsOf, subscribed)
		if len(got) != len(tc.want) {
			t.Errorf("%+v: got %v, want %v", tc.s, got, tc.want)
			continue
		}
		for _, r := range tc.want {
			if !got[r] {
				t.Errorf("%+v: %s missing from %v", tc.s, r, got)
			}
		}
	}
}

func TestMergeExtensions(t *testing.T) {
	on, off := true, false
	cur := mergeExtensions(extensionsReq{}, extensionsReq{
		ToDevice: &toDeviceReq{Enabled: &on, Since: "5"}, E2EE: &toggle{Enabled: &on},
		Receipts: &scoped{Enabled: &on, Rooms: &[]string{"*"}},
	})
	if !cur.ToDevice.on() || cur.ToDevice.Since != "" || !cur.E2EE.on() || !cur.Receipts.on() {
		t.Fatalf("first merge: %+v", cur)
	}
	// A request without the extensions keeps them (sticky).
	cur = mergeExtensions(cur, extensionsReq{ToDevice: &toDeviceReq{Since: "9"}, Receipts: &scoped{}})
	if !cur.ToDevice.on() || !cur.E2EE.on() || !cur.Receipts.on() || cur.Receipts.Rooms == nil {
		t.Fatalf("sticky: %+v", cur)
	}
	cur = mergeExtensions(cur, extensionsReq{E2EE: &toggle{Enabled: &off}})
	if cur.E2EE.on() {
		t.Fatal("disabling kept the extension")
	}
}

func TestConnsPositions(t *testing.T) {
	cs := conns{instance: "abcd", m: map[connKey]*conn{}}
	now := time.Unix(1000, 0)
	k := connKey{"@u:x", "DEV", "room-list"}
	c := cs.get(k, now)
	if cs.get(k, now) != c {
		t.Fatal("get made a second connection")
	}
	var seqs []int64
	for i := 0; i < keepStates+2; i++ {
		seqs = append(seqs, c.addLocked(&connState{}))
	}
	if c.stateLocked(seqs[0]) != nil || c.stateLocked(seqs[len(seqs)-1]) == nil || len(c.states) != keepStates {
		t.Errorf("kept %d states", len(c.states))
	}
	for _, tc := range []struct {
		pos string
		ok  bool
	}{{cs.pos(3), true}, {"abcd_0", false}, {"abce_3", false}, {"3", false}, {"abcd_x", false}, {"", false}} {
		if _, ok := cs.parsePos(tc.pos); ok != tc.ok {
			t.Errorf("parsePos(%q) = %v", tc.pos, ok)
		}
	}
	// Expiry and the bound on connections.
	cs.sweep(now.Add(connTTL / 2))
	if cs.m[k] == nil {
		t.Fatal("swept a fresh connection")
	}
	cs.sweep(now.Add(connTTL + time.Second))
	if cs.m[k] != nil {
		t.Fatal("kept an expired connection")
	}
	for i := 0; i < maxConns; i++ {
		cs.get(connKey{"@u:x", fmt.Sprint(i), ""}, now.Add(time.Duration(i)*time.Millisecond))
	}
	cs.get(connKey{"@u:x", "last", ""}, now.Add(time.Hour/2))
	if len(cs.m) > maxConns*9/10+1 {
		t.Errorf("%d connections kept past the bound", len(cs.m))
	}
	if cs.m[connKey{"@u:x", "0", ""}] != nil || cs.m[connKey{"@u:x", fmt.Sprint(maxConns - 1), ""}] == nil {
		t.Error("eviction did not drop the least recently used")
	}
}

func TestStateLayers(t *testing.T) {
	var st *connState
	for i := 0; i < 3*maxDepth; i++ {
		next := newState(st)
		next.rooms[fmt.Sprint("!r", i%5)] = &roomSent{upTo: int64(i)}
		if next.depth > maxDepth {
			t.Fatalf("depth %d", next.depth)
		}
		st = next
	}
	for r := 0; r < 5; r++ {
		// The last write of room r was at the largest i < 3*maxDepth with
		// i%5 == r.
		want := int64(-1)
		for i := 0; i < 3*maxDepth; i++ {
			if i%5 == r {
				want = int64(i)
			}
		}
		if got := st.room(fmt.Sprint("!r", r)); got == nil || got.upTo != want {
			t.Errorf("room %d: %+v, want upTo %d", r, got, want)
		}
	}
	if st.room("!none") != nil {
		t.Error("unknown room found")
	}
}
