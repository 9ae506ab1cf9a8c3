package profile

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// fakeProfiles holds one user's fields.
type fakeProfiles struct {
	mu     sync.Mutex
	fields map[string]json.RawMessage
}

func (f *fakeProfiles) ProfileFields(ctx context.Context, userID string) (map[string]json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]json.RawMessage{}
	for k, v := range f.fields {
		out[k] = v
	}
	return out, nil
}

func (f *fakeProfiles) SetProfileField(ctx context.Context, userID, field string, value json.RawMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fields[field] = value
	return nil
}

func (f *fakeProfiles) Account(ctx context.Context, userID string) (storage.Account, error) {
	return storage.Account{UserID: userID}, nil
}

// fakeRooms keeps each room's member content of one user and counts sends.
type fakeRooms struct {
	mu      sync.Mutex
	members map[string]map[string]any
	refuse  string
	sends   int
	passes  int
	// block, when set, holds every send until closed.
	block chan struct{}
}

func (f *fakeRooms) RoomsOf(ctx context.Context, userID, membership string) ([]string, error) {
	f.mu.Lock()
	f.passes++
	f.mu.Unlock()
	return []string{"!a", "!b", "!c", "!gone"}, nil
}

func (f *fakeRooms) CurrentStateEvent(ctx context.Context, roomID string, key rsapi.StateKey) (rsapi.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.members[roomID]
	if !ok {
		return rsapi.Event{}, rsapi.ErrRoomNotFound
	}
	raw, _ := json.Marshal(map[string]any{"content": c})
	return rsapi.Event{JSON: raw}, nil
}

func (f *fakeRooms) Send(ctx context.Context, roomID string, ev rsapi.ProtoEvent) (rsapi.Event, error) {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if roomID == f.refuse {
		return rsapi.Event{}, &rsapi.NotAllowedError{Reason: "no"}
	}
	var c map[string]any
	if err := json.Unmarshal(ev.Content, &c); err != nil {
		return rsapi.Event{}, err
	}
	f.members[roomID] = c
	f.sends++
	return rsapi.Event{}, nil
}

func (f *fakeRooms) name(roomID string) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members[roomID]["displayname"]
}

func TestPropagatorUpdatesJoinedRoomsAndCoalesces(t *testing.T) {
	rooms := &fakeRooms{members: map[string]map[string]any{
		"!a": {"membership": "join", "displayname": "old", "reason": "hi"},
		"!b": {"membership": "join", "displayname": "new"}, // already right
		"!c": {"membership": "join", "displayname": "old"}, // refuses
	}, refuse: "!c", block: make(chan struct{})}
	profiles := &fakeProfiles{fields: map[string]json.RawMessage{"displayname": json.RawMessage(`"new"`)}}
	p := NewPropagator(rooms, profiles, logrus.NewEntry(logrus.New()), 1, time.Millisecond)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Changed("@u:x")
	// Changes while the pass runs (it is held in its first send): one
	// more pass, whatever their number.
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		rooms.mu.Lock()
		running := rooms.passes == 1
		rooms.mu.Unlock()
		if running {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("no pass started")
		}
	}
	for i := 0; i < 10; i++ {
		p.Changed("@u:x")
	}
	close(rooms.block)
	deadline := time.Now().Add(5 * time.Second)
	for {
		rooms.mu.Lock()
		passes := rooms.passes
		rooms.mu.Unlock()
		if passes >= 2 && rooms.name("!a") == "new" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("room !a not updated, or no second pass")
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	rooms.mu.Lock()
	defer rooms.mu.Unlock()
	if rooms.passes != 2 {
		t.Fatalf("%d passes, want 2 (eleven changes, the last ten during the first pass)", rooms.passes)
	}
	if rooms.sends != 1 {
		t.Fatalf("%d sends, want 1 (the second pass finds every room right)", rooms.sends)
	}
	if _, kept := rooms.members["!a"]["reason"]; kept {
		t.Fatal("a profile update carried the old reason")
	}
	if rooms.members["!c"]["displayname"] != "old" {
		t.Fatal("refused room changed")
	}
	// After Stop, changes are ignored.
	p.Changed("@u:x")
}

func TestSetOrDelete(t *testing.T) {
	v := "x"
	c := map[string]any{"a": "x"}
	if setOrDelete(c, "a", &v) || !setOrDelete(c, "b", &v) || !setOrDelete(c, "a", nil) || setOrDelete(c, "a", nil) {
		t.Fatalf("setOrDelete: %v", c)
	}
}
