// Package directory is the roomserver's room directory: local room aliases
// and the public room list. It sits beside the read path (internal/query):
// aliases and listings are rows of its own tables (roomserver/storage
// aliases.go and published.go), and what the public list shows of a room
// (name, topic, join rule…) is read from the room's current state through
// api.Reader, remembered per room until the room's state changes.
//
// It decides nothing about permissions: the client API checks who may
// create, delete or publish before calling it.
package directory

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// StateReader is what the directory reads of rooms: one current state
// event at a time.
type StateReader interface {
	CurrentStateEvent(ctx context.Context, roomID string, key api.StateKey) (api.Event, error)
}

// maxCachedSummaries bounds the summaries kept; past it the cache starts
// over (one entry per published room, so only a huge directory gets there).
const maxCachedSummaries = 50_000

// Directory implements api.Directory.
type Directory struct {
	store *storage.Store
	rooms StateReader

	mu sync.Mutex // guards summaries
	// summaries are the public list entries of published rooms (all but
	// the joined count), by room nid, each valid for one state snapshot.
	summaries map[int64]summary
}

// summary is a room's public list entry as of a state snapshot.
type summary struct {
	snapshotNID int64
	room        api.PublicRoom
}

// New returns the directory on store, reading room state through rooms.
func New(store *storage.Store, rooms StateReader) *Directory {
	return &Directory{store: store, rooms: rooms, summaries: map[int64]summary{}}
}

// roomNID returns the nid of a room, or api.ErrRoomNotFound.
func (d *Directory) roomNID(ctx context.Context, roomID string) (int64, error) {
	r, err := d.store.Room(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, api.ErrRoomNotFound
	}
	if err != nil {
		return 0, err
	}
	return r.NID, nil
}

// SetAlias implements api.Directory.
func (d *Directory) SetAlias(ctx context.Context, alias, roomID, creator string) error {
	nid, err := d.roomNID(ctx, roomID)
	if err != nil {
		return err
	}
	err = d.store.InsertAlias(ctx, alias, nid, creator)
	if errors.Is(err, storage.ErrAliasExists) {
		return api.ErrAliasExists
	}
	return err
}

// ResolveAlias implements api.Directory.
func (d *Directory) ResolveAlias(ctx context.Context, alias string) (api.RoomAlias, error) {
	a, err := d.store.Alias(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return api.RoomAlias{}, api.ErrNotFound
	}
	if err != nil {
		return api.RoomAlias{}, err
	}
	return api.RoomAlias{Alias: a.Alias, RoomID: a.RoomID, Creator: a.Creator}, nil
}

// DeleteAlias implements api.Directory.
func (d *Directory) DeleteAlias(ctx context.Context, a api.RoomAlias) error {
	nid, err := d.roomNID(ctx, a.RoomID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return api.ErrNotFound
	}
	if err != nil {
		return err
	}
	err = d.store.DeleteAlias(ctx, a.Alias, nid, a.Creator)
	if errors.Is(err, storage.ErrNotFound) {
		return api.ErrNotFound
	}
	return err
}

// AliasesOf implements api.Directory.
func (d *Directory) AliasesOf(ctx context.Context, roomID string) ([]string, error) {
	nid, err := d.roomNID(ctx, roomID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return d.store.AliasesOf(ctx, nid)
}

// SetVisibility implements api.Directory.
func (d *Directory) SetVisibility(ctx context.Context, roomID string, public bool) error {
	nid, err := d.roomNID(ctx, roomID)
	if err != nil {
		return err
	}
	v := storage.VisibilityPrivate
	if public {
		v = storage.VisibilityPublic
	}
	return d.store.SetVisibility(ctx, nid, v)
}

// Visibility implements api.Directory.
func (d *Directory) Visibility(ctx context.Context, roomID string) (bool, error) {
	nid, err := d.roomNID(ctx, roomID)
	if err != nil {
		return false, err
	}
	v, err := d.store.Visibility(ctx, nid)
	return v == storage.VisibilityPublic, err
}

// PublicRooms implements api.Directory. The whole list is read and
// sorted on each call (one query, with the joined counts), and entries
// come from the summaries cache; only a search or a room type filter
// needs the summaries of rooms beyond the page.
//
// Paging tokens name the last (next) or first (prev) room of a page by
// its sort key, so that a room joining or leaving the list between two
// requests shifts nothing by one; a room whose member count changed may
// still move across the boundary, as on any server.
func (d *Directory) PublicRooms(ctx context.Context, q api.PublicRoomsQuery) (api.PublicRoomsPage, error) {
	since, err := parseToken(q.Since)
	if err != nil {
		return api.PublicRoomsPage{}, err
	}
	rooms, err := d.store.PublishedRooms(ctx)
	if err != nil {
		return api.PublicRoomsPage{}, err
	}
	sort.Slice(rooms, func(i, j int) bool { return keyOf(rooms[i]).before(keyOf(rooms[j])) })

	filtering := q.SearchTerm != "" || len(q.RoomTypes) > 0
	var entries []api.PublicRoom // when filtering: the summaries of rooms kept
	if filtering {
		term := strings.ToLower(q.SearchTerm)
		kept := rooms[:0]
		for _, r := range rooms {
			s, err := d.summary(ctx, r)
			if err != nil {
				return api.PublicRoomsPage{}, err
			}
			if matches(s, term, q.RoomTypes) {
				kept = append(kept, r)
				entries = append(entries, s)
			}
		}
		rooms = kept
	}

	start, end := 0, len(rooms)
	switch since.dir {
	case 'n':
		start = sort.Search(len(rooms), func(i int) bool { return since.key.before(keyOf(rooms[i])) })
		if q.Limit > 0 && start+q.Limit < end {
			end = start + q.Limit
		}
	case 'p':
		end = sort.Search(len(rooms), func(i int) bool { return !keyOf(rooms[i]).before(since.key) })
		if q.Limit > 0 && end-q.Limit > start {
			start = end - q.Limit
		}
	default:
		if q.Limit > 0 && q.Limit < end {
			end = q.Limit
		}
	}

	page := api.PublicRoomsPage{Chunk: make([]api.PublicRoom, 0, end-start), Total: len(rooms)}
	for i := start; i < end; i++ {
		var s api.PublicRoom
		if filtering {
			s = entries[i]
		} else if s, err = d.summary(ctx, rooms[i]); err != nil {
			return api.PublicRoomsPage{}, err
		}
		page.Chunk = append(page.Chunk, s)
	}
	if end < len(rooms) && end > start {
		page.NextBatch = token{dir: 'n', key: keyOf(rooms[end-1])}.String()
	}
	if start > 0 && end > start {
		page.PrevBatch = token{dir: 'p', key: keyOf(rooms[start])}.String()
	}
	return page, nil
}

// matches reports whether a room passes a search (term lower-cased, ""
// for any) and a room type filter (nil for any, "" for untyped rooms).
func matches(r api.PublicRoom, term string, types []string) bool {
	if len(types) > 0 {
		ok := false
		for _, t := range types {
			ok = ok || t == r.RoomType
		}
		if !ok {
			return false
		}
	}
	if term == "" {
		return true
	}
	for _, s := range []string{r.Name, r.Topic, r.CanonicalAlias} {
		if strings.Contains(strings.ToLower(s), term) {
			return true
		}
	}
	return false
}

// summary returns a published room's list entry, from the cache when the
// room's state has not changed since it was made.
func (d *Directory) summary(ctx context.Context, r storage.PublishedRoom) (api.PublicRoom, error) {
	d.mu.Lock()
	s, ok := d.summaries[r.NID]
	d.mu.Unlock()
	if !ok || s.snapshotNID != r.SnapshotNID {
		room, err := d.readSummary(ctx, r.RoomID)
		if err != nil {
			return api.PublicRoom{}, err
		}
		// If the state moved on while it was read, the entry is newer
		// than its snapshot says: the next listing, seeing the newer
		// snapshot, reads it again. Never older, so never stale.
		s = summary{snapshotNID: r.SnapshotNID, room: room}
		d.mu.Lock()
		if len(d.summaries) >= maxCachedSummaries {
			d.summaries = map[int64]summary{}
		}
		d.summaries[r.NID] = s
		d.mu.Unlock()
	}
	room := s.room
	room.NumJoinedMembers = r.Joined
	return room, nil
}

// readSummary reads a room's list entry (all but the joined count) from
// its current state.
func (d *Directory) readSummary(ctx context.Context, roomID string) (api.PublicRoom, error) {
	room := api.PublicRoom{RoomID: roomID}
	var historyVisibility, guestAccess string
	fields := []struct {
		typ, key string
		dst      *string
	}{
		{"m.room.create", "type", &room.RoomType},
		{"m.room.name", "name", &room.Name},
		{"m.room.topic", "topic", &room.Topic},
		{"m.room.canonical_alias", "alias", &room.CanonicalAlias},
		{"m.room.avatar", "url", &room.AvatarURL},
		{"m.room.join_rules", "join_rule", &room.JoinRule},
		{"m.room.history_visibility", "history_visibility", &historyVisibility},
		{"m.room.guest_access", "guest_access", &guestAccess},
	}
	for _, f := range fields {
		ev, err := d.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: f.typ})
		if errors.Is(err, api.ErrNotFound) {
			continue
		}
		if err != nil {
			return api.PublicRoom{}, fmt.Errorf("read %s of %s: %w", f.typ, roomID, err)
		}
		var e struct {
			Content map[string]json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(ev.JSON, &e); err != nil {
			return api.PublicRoom{}, fmt.Errorf("parse %s of %s: %w", f.typ, roomID, err)
		}
		// A value of the wrong shape (a number for a name) leaves the
		// field empty rather than hiding the room.
		_ = json.Unmarshal(e.Content[f.key], f.dst)
	}
	if room.JoinRule == "" {
		room.JoinRule = "invite"
	}
	room.WorldReadable = historyVisibility == "world_readable"
	room.GuestCanJoin = guestAccess == "can_join"
	return room, nil
}

// sortKey is a room's place in the list: most joined members first, then
// room id.
type sortKey struct {
	joined int
	roomID string
}

func keyOf(r storage.PublishedRoom) sortKey { return sortKey{joined: r.Joined, roomID: r.RoomID} }

// before reports whether k sorts before o.
func (k sortKey) before(o sortKey) bool {
	if k.joined != o.joined {
		return k.joined > o.joined
	}
	return k.roomID < o.roomID
}

// token is a paging token: the page after (dir 'n') or before ('p') key.
// The zero token asks for the first page.
type token struct {
	dir byte
	key sortKey
}

// String encodes the token: opaque to clients, URL-safe.
func (t token) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(string(t.dir) + strconv.Itoa(t.key.joined) + "|" + t.key.roomID))
}

// parseToken decodes a token; "" is the zero token, anything that String
// did not make is api.ErrBadPageToken.
func parseToken(s string) (token, error) {
	if s == "" {
		return token{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) < 3 || raw[0] != 'n' && raw[0] != 'p' {
		return token{}, api.ErrBadPageToken
	}
	count, roomID, ok := strings.Cut(string(raw[1:]), "|")
	joined, err := strconv.Atoi(count)
	if !ok || err != nil || joined < 0 || roomID == "" {
		return token{}, api.ErrBadPageToken
	}
	return token{dir: raw[0], key: sortKey{joined: joined, roomID: roomID}}, nil
}

var _ api.Directory = (*Directory)(nil)
