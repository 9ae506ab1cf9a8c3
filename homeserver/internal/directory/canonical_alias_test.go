package directory

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// fakeRooms answers alias lookups from a map and the room's current
// m.room.canonical_alias from content; nothing else is called.
type fakeRooms struct {
	api.Directory
	aliases map[string]string // alias → room id
	current string            // current canonical alias content, "" for none
}

func (f *fakeRooms) ResolveAlias(_ context.Context, alias string) (api.RoomAlias, error) {
	room, ok := f.aliases[alias]
	if !ok {
		return api.RoomAlias{}, api.ErrNotFound
	}
	return api.RoomAlias{Alias: alias, RoomID: room, Creator: "@alice:test.local"}, nil
}

func (f *fakeRooms) CurrentStateEvent(_ context.Context, roomID string, key api.StateKey) (api.Event, error) {
	if key.Type != typeCanonicalAlias || f.current == "" {
		return api.Event{}, api.ErrNotFound
	}
	return api.Event{RoomID: roomID, JSON: json.RawMessage(`{"type":"m.room.canonical_alias","content":` + f.current + `}`)}, nil
}

func (f *fakeRooms) Membership(context.Context, string, string) (string, int64, error) {
	return "", 0, nil
}

func TestCheckCanonicalAlias(t *testing.T) {
	const room = "!room:test.local"
	rooms := &fakeRooms{aliases: map[string]string{"#here:test.local": room, "#there:test.local": "!other:test.local"}}
	h := New(Deps{Global: &config.Global{ServerName: "test.local"}, Config: &config.Client{}, Rooms: rooms})
	for _, c := range []struct {
		current, content, errcode string
	}{
		{"", `{}`, ""},
		{"", `{"alias": "#here:test.local"}`, ""},
		{"", `{"alias": "#here:test.local", "alt_aliases": ["#here:test.local"]}`, ""},
		{"", `{"alias": "#there:test.local"}`, "M_BAD_ALIAS"},
		{"", `{"alt_aliases": ["#here:test.local", "#missing:test.local"]}`, "M_BAD_ALIAS"},
		{"", `{"alias": "#here:other.example"}`, "M_BAD_ALIAS"},
		{"", `{"alias": "%invalid_aliases"}`, "M_INVALID_PARAM"},
		{"", `{"alt_aliases": "#here:test.local"}`, "M_BAD_JSON"},
		// Aliases already in the room's event are not checked again:
		// one may drop an alias whose mapping is gone, or keep it.
		{`{"alias": "#gone:test.local", "alt_aliases": ["#there:test.local"]}`, `{"alt_aliases": ["#there:test.local"]}`, ""},
		{`{"alias": "#gone:test.local"}`, `{"alias": "#gone:test.local", "alt_aliases": ["#here:test.local"]}`, ""},
		{`{"alias": "#gone:test.local"}`, `{"alias": "#gone:test.local", "alt_aliases": ["#also-gone:test.local"]}`, "M_BAD_ALIAS"},
	} {
		rooms.current = c.current
		err := h.CheckCanonicalAlias(context.Background(), room, json.RawMessage(c.content))
		got := ""
		if err != nil {
			e, internal := httputil.AsError(err)
			if internal {
				t.Fatalf("%s: internal error %v", c.content, err)
			}
			got = string(e.Code)
			if e.Status != 400 {
				t.Errorf("%s: status %d, want 400", c.content, e.Status)
			}
		}
		if got != c.errcode {
			t.Errorf("current %s, content %s: %q (%v), want %q", c.current, c.content, got, err, c.errcode)
		}
	}
}
