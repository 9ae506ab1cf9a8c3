package slidingsync

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"sort"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/internal/syncv3"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// roomWorkers bounds the rooms built at once for one response.
const roomWorkers = 4

// build makes one response from a connection's state.
type build struct {
	h    *Handlers
	dev  hsapi.Device
	prev *connState
	req  *request
	subs map[string]roomConfig
	ext  extensionsReq
	upTo streams.Token

	// parts reads from the connection's position (as an initial sync
	// without one); full reads as an initial sync, for rooms sent whole.
	parts    *syncv3.Parts
	full     *syncv3.Parts
	fullOnce sync.Once
	fullErr  error
	next     streams.Token

	memberships map[string]storage.Membership
	stamps      map[string]int64
	latest      map[string]int64
	// dm are the rooms of m.direct, read when needed.
	dm     map[string]bool
	dmOnce sync.Once
	dmErr  error
	// countsChanged says a list's count differs from the last response.
	countsChanged bool
}

// run builds the response and the connection's state after it.
func (b *build) run(ctx context.Context) (*response, *connState, error) {
	var since *streams.Token
	if b.prev != nil {
		t := b.prev.token
		since = &t
	}
	var err error
	if b.parts, err = b.h.V3.NewParts(ctx, b.dev, since, b.upTo); err != nil {
		return nil, nil, err
	}
	if err := b.loadRooms(ctx); err != nil {
		return nil, nil, err
	}
	b.next = b.parts.Next()
	st := newState(b.prev)
	st.token = b.next
	// The to-device position is the extension's own: a new connection
	// starts at the inbox's beginning (whatever is still in it is
	// undelivered), and it moves only when the extension delivers.
	st.token.ToDevice = 0
	if b.prev != nil {
		st.token.ToDevice = b.prev.token.ToDevice
	}
	resp := &response{Lists: map[string]listResp{}, Rooms: map[string]*roomResp{}}

	want, listsOf, err := b.lists(ctx, resp, st)
	if err != nil {
		return nil, nil, err
	}
	subscribed := map[string]bool{}
	for room, cfg := range b.subs {
		if _, ok := b.memberships[room]; !ok {
			continue
		}
		subscribed[room] = true
		if cur, ok := want[room]; ok {
			want[room] = cur.merge(cfg)
		} else {
			want[room] = cfg
		}
	}

	var mu sync.Mutex
	whole := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(roomWorkers)
	for room, cfg := range want {
		m := b.memberships[room]
		var sent *roomSent
		if b.prev != nil {
			sent = b.prev.room(room)
		}
		g.Go(func() error {
			rr, now, isWhole, err := b.room(gctx, m, cfg, sent)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if rr != nil {
				resp.Rooms[room] = rr
			}
			st.rooms[room] = now
			whole[room] = isWhole
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if err := b.extensions(ctx, resp, st, want, listsOf, subscribed, whole); err != nil {
		return nil, nil, err
	}
	return resp, st, nil
}

// loadRooms reads the user's rooms and their activity.
func (b *build) loadRooms(ctx context.Context) error {
	ms, err := b.parts.Memberships(ctx)
	if err != nil {
		return err
	}
	b.memberships = make(map[string]storage.Membership, len(ms))
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		switch m.Membership {
		case "join":
		case "invite", "knock":
			if b.parts.Ignored(m.Sender) {
				continue
			}
		case "leave", "ban":
			// A departure is told once, to a connection that had the
			// room.
			if b.prev == nil || m.SyncPos <= b.prev.token.Rooms {
				continue
			}
			if s := b.prev.room(m.RoomID); s == nil || s.memberPos == m.SyncPos {
				continue
			}
		default:
			continue
		}
		b.memberships[m.RoomID] = m
		ids = append(ids, m.RoomID)
	}
	bumps, latest := b.h.Notifier.Activity(ids)
	b.stamps = make(map[string]int64, len(ids))
	b.latest = make(map[string]int64, len(ids))
	for i, id := range ids {
		m := b.memberships[id]
		s := bumps[i]
		switch m.Membership {
		case "invite", "knock":
			s = m.SyncPos
		case "leave", "ban":
			s = min(s, m.SyncPos)
		}
		if s == 0 {
			s = m.SyncPos
		}
		b.stamps[id] = s
		b.latest[id] = latest[i]
	}
	return nil
}

// lists fills the lists' counts and returns the rooms in their ranges
// with the config that applies to each, and the lists each is in.
func (b *build) lists(ctx context.Context, resp *response, st *connState) (map[string]roomConfig, map[string][]string, error) {
	sorted := make([]string, 0, len(b.memberships))
	for id := range b.memberships {
		sorted = append(sorted, id)
	}
	sort.Slice(sorted, func(i, j int) bool {
		si, sj := b.stamps[sorted[i]], b.stamps[sorted[j]]
		if si != sj {
			return si > sj
		}
		return sorted[i] < sorted[j]
	})
	want := map[string]roomConfig{}
	listsOf := map[string][]string{}
	names := make([]string, 0, len(b.req.Lists))
	for name := range b.req.Lists {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		l := b.req.Lists[name]
		match, err := b.filter(ctx, l.Filters)
		if err != nil {
			return nil, nil, err
		}
		var rooms []string
		for _, id := range sorted {
			ok, err := match(id)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				rooms = append(rooms, id)
			}
		}
		resp.Lists[name] = listResp{Count: len(rooms)}
		st.counts[name] = len(rooms)
		if b.prev != nil && b.prev.counts[name] != len(rooms) {
			b.countsChanged = true
		}
		for _, rg := range l.Ranges {
			for i := rg[0]; i <= rg[1] && i < int64(len(rooms)); i++ {
				id := rooms[i]
				if cur, ok := want[id]; ok {
					want[id] = cur.merge(l.roomConfig)
				} else {
					want[id] = l.roomConfig
				}
				listsOf[id] = append(listsOf[id], name)
			}
		}
	}
	return want, listsOf, nil
}

// filter returns the test of a list's filters.
func (b *build) filter(ctx context.Context, f *listFilters) (func(string) (bool, error), error) {
	if f == nil {
		return func(string) (bool, error) { return true, nil }, nil
	}
	var inSpaces map[string]bool
	if len(f.Spaces) > 0 {
		inSpaces = map[string]bool{}
		for _, space := range f.Spaces {
			state, err := b.h.Rooms.CurrentState(ctx, space)
			if err != nil && !isNotFound(err) {
				return nil, err
			}
			for _, raw := range state {
				e, err := events.Parse(raw)
				if err != nil || e.Type != "m.space.child" || e.StateKey == nil {
					continue
				}
				var c struct {
					Via []string `json:"via"`
				}
				if json.Unmarshal(e.Content, &c) == nil && len(c.Via) > 0 {
					inSpaces[*e.StateKey] = true
				}
			}
		}
	}
	return func(room string) (bool, error) {
		m := b.memberships[room]
		if f.IsInvite != nil && (m.Membership == "invite") != *f.IsInvite {
			return false, nil
		}
		if inSpaces != nil && !inSpaces[room] {
			return false, nil
		}
		if f.IsDM != nil {
			dm, err := b.dmRooms(ctx)
			if err != nil {
				return false, err
			}
			if dm[room] != *f.IsDM {
				return false, nil
			}
		}
		if f.IsEncrypted == nil && f.RoomTypes == nil && f.NotRoomTypes == nil {
			return true, nil
		}
		meta, err := b.h.meta.get(ctx, b.h.Rooms, room, b.latest[room])
		if err != nil {
			return false, err
		}
		if f.IsEncrypted != nil && meta.encrypted != *f.IsEncrypted {
			return false, nil
		}
		if f.RoomTypes != nil && !typeIn(meta, f.RoomTypes) {
			return false, nil
		}
		if typeIn(meta, f.NotRoomTypes) {
			return false, nil
		}
		return true, nil
	}, nil
}

// typeIn reports whether the room's create type is one of types (nil
// standing for rooms without one).
func typeIn(m roomMeta, types []*string) bool {
	for _, t := range types {
		if (t == nil && !m.typed) || (t != nil && m.typed && *t == m.roomType) {
			return true
		}
	}
	return false
}

// dmRooms returns the rooms of the user's m.direct account data.
func (b *build) dmRooms(ctx context.Context) (map[string]bool, error) {
	b.dmOnce.Do(func() {
		b.dm = map[string]bool{}
		raw, err := b.h.Store.GetAccountData(ctx, b.dev.UserID, "", "m.direct")
		if errors.Is(err, storage.ErrNotFound) {
			return
		}
		if err != nil {
			b.dmErr = err
			return
		}
		var direct map[string][]string
		if json.Unmarshal(raw, &direct) != nil {
			return
		}
		for _, rooms := range direct {
			for _, r := range rooms {
				b.dm[r] = true
			}
		}
	})
	return b.dm, b.dmErr
}

// fullParts returns the parts read as an initial sync.
func (b *build) fullParts(ctx context.Context) (*syncv3.Parts, error) {
	if b.prev == nil {
		return b.parts, nil
	}
	b.fullOnce.Do(func() {
		b.full, b.fullErr = b.h.V3.NewParts(ctx, b.dev, nil, b.upTo)
	})
	return b.full, b.fullErr
}

// room builds one room's part: whole when the connection never had the
// room (or had it with another config or membership), else what is new
// since it had it; nil when nothing is. It returns what the connection
// has of the room afterwards.
func (b *build) room(ctx context.Context, m storage.Membership, cfg roomConfig, sent *roomSent) (*roomResp, *roomSent, bool, error) {
	key := cfg.key()
	stamp := b.stamps[m.RoomID]
	joinedLike := m.Membership == "join" || m.Membership == "invite" || m.Membership == "knock"
	whole := sent == nil || sent.config != key || (sent.membership != m.Membership && joinedLike)
	now := &roomSent{upTo: b.next.Rooms, membership: m.Membership, memberPos: m.SyncPos, config: key, bump: stamp}

	if m.Membership == "invite" || m.Membership == "knock" {
		if !whole {
			return nil, sent, false, nil
		}
		state, err := b.parts.StrippedState(ctx, m)
		if err != nil {
			return nil, nil, false, err
		}
		rr := &roomResp{Initial: true, InviteState: state, BumpStamp: &stamp}
		for _, raw := range state {
			var ev struct {
				Type     string `json:"type"`
				StateKey string `json:"state_key"`
				Content  struct {
					Name     string `json:"name"`
					IsDirect bool   `json:"is_direct"`
				} `json:"content"`
			}
			if json.Unmarshal(raw, &ev) != nil {
				continue
			}
			switch {
			case ev.Type == "m.room.name":
				rr.Name = ev.Content.Name
			case ev.Type == "m.room.member" && ev.StateKey == b.dev.UserID:
				rr.IsDM = ev.Content.IsDirect
			}
		}
		return rr, now, true, nil
	}

	from := int64(0)
	if !whole {
		from = sent.upTo
		if b.latest[m.RoomID] <= from && sent.membership == m.Membership && sent.bump == stamp {
			return b.countsOnly(ctx, m, sent)
		}
	}
	rq := syncv3.RoomRequest{RoomID: m.RoomID, From: from, Limit: cfg.limit()}
	if m.Membership == "join" {
		rq.JoinPos = m.StreamPos
	} else {
		rq.UpTo, rq.Left = m.SyncPos, true
		now.upTo = m.SyncPos
	}
	if b.prev != nil {
		rq.LiveAfter = b.prev.token.Rooms
	}
	room, err := b.parts.Room(ctx, rq)
	if err != nil {
		return nil, nil, false, err
	}
	if !whole && len(room.Timeline) == 0 && len(room.State) == 0 && sent.membership == m.Membership && sent.bump == stamp {
		now.lazy, now.counts = sent.lazy, sent.counts
		return nil, now, false, nil
	}
	numLive := room.NumLive
	rr := &roomResp{Initial: whole, Timeline: room.Timeline, Limited: room.Limited, PrevBatch: room.PrevBatch, NumLive: &numLive}
	if whole || stamp != sent.bump {
		rr.BumpStamp = &stamp
	}

	// required_state: the wanted events of the state (whole, or what
	// changed), lazily loaded members of the timeline's senders.
	w := cfg.wanted(b.dev.UserID)
	lazy := map[string]bool{}
	now.lazy = map[string]bool{}
	if !whole && sent.lazy != nil {
		maps.Copy(now.lazy, sent.lazy)
	}
	if w.lazy {
		for _, u := range room.Senders {
			if !now.lazy[u] {
				lazy[u] = true
			}
		}
	}
	have := map[string]bool{}
	for _, e := range room.State {
		if e.StateKey == nil {
			continue
		}
		if w.keeps(e.Type, *e.StateKey, lazy) {
			rr.RequiredState = append(rr.RequiredState, e)
			if e.Type == "m.room.member" {
				have[*e.StateKey] = true
			}
		}
		b.describe(rr, e)
	}
	var missing []rsapi.StateKey
	for u := range lazy {
		now.lazy[u] = true
		if !have[u] && !whole {
			missing = append(missing, rsapi.StateKey{Type: "m.room.member", StateKey: u})
		}
	}
	if len(missing) > 0 {
		more, err := b.parts.CurrentState(ctx, m.RoomID, missing)
		if err != nil {
			return nil, nil, false, err
		}
		rr.RequiredState = append(rr.RequiredState, more...)
	}

	if whole || room.HasMembers {
		joined, invited, heroes, err := b.parts.Summary(ctx, m.RoomID)
		if err != nil {
			return nil, nil, false, err
		}
		rr.JoinedCount, rr.InvitedCount = &joined, &invited
		if rr.Name == "" {
			profiles := map[string]hero{}
			for _, e := range room.State {
				if e.Type == "m.room.member" && e.StateKey != nil {
					var c struct {
						DisplayName string `json:"displayname"`
						AvatarURL   string `json:"avatar_url"`
					}
					_ = json.Unmarshal(e.Content, &c)
					profiles[*e.StateKey] = hero{UserID: *e.StateKey, DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
				}
			}
			for _, u := range heroes {
				hr, ok := profiles[u]
				if !ok {
					hr = hero{UserID: u}
				}
				rr.Heroes = append(rr.Heroes, hr)
			}
		}
	}
	if m.Membership == "join" {
		counts, err := b.parts.Unread(ctx, m.RoomID)
		if err != nil {
			return nil, nil, false, err
		}
		rr.NotificationCount, rr.HighlightCount = &counts.Notifications, &counts.Highlights
		now.counts = counts
	}
	if whole {
		dm, err := b.dmRooms(ctx)
		if err != nil {
			return nil, nil, false, err
		}
		rr.IsDM = dm[m.RoomID]
	}
	return rr, now, whole, nil
}

// countsOnly is the part of a room with nothing new but, maybe, its
// unread counts: they change when the user's receipts move.
func (b *build) countsOnly(ctx context.Context, m storage.Membership, sent *roomSent) (*roomResp, *roomSent, bool, error) {
	if m.Membership != "join" || !b.parts.ReceiptsChanged(m.RoomID) {
		return nil, sent, false, nil
	}
	counts, err := b.parts.Unread(ctx, m.RoomID)
	if err != nil || counts == sent.counts {
		return nil, sent, false, err
	}
	now := *sent
	now.counts = counts
	return &roomResp{NotificationCount: &counts.Notifications, HighlightCount: &counts.Highlights}, &now, false, nil
}

// describe takes the room's name and avatar from its state.
func (b *build) describe(rr *roomResp, e events.Client) {
	if e.StateKey == nil || *e.StateKey != "" {
		return
	}
	var c struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}
	switch e.Type {
	case "m.room.name":
		if json.Unmarshal(e.Content, &c) == nil {
			rr.Name = c.Name
		}
	case "m.room.avatar":
		if json.Unmarshal(e.Content, &c) == nil {
			rr.Avatar = c.URL
		}
	}
}

// extensions fills the extensions' data.
func (b *build) extensions(ctx context.Context, resp *response, st *connState, want map[string]roomConfig,
	listsOf map[string][]string, subscribed, whole map[string]bool) error {
	x := b.ext
	if x.ToDevice.on() {
		since := st.token.ToDevice
		if r := b.req.Extensions.ToDevice; r != nil && r.Since != "" {
			since, _ = strconv.ParseInt(r.Since, 10, 64)
		}
		msgs, next, err := b.parts.ToDevice(ctx, since)
		if err != nil {
			return err
		}
		if msgs == nil {
			msgs = []json.RawMessage{}
		}
		resp.Extensions.ToDevice = &toDeviceResp{NextBatch: strconv.FormatInt(next, 10), Events: msgs}
		st.token.ToDevice = next
	}
	if x.E2EE.on() {
		counts, types, err := b.parts.KeyCounts(ctx)
		if err != nil {
			return err
		}
		e := &e2eeResp{OneTimeKeysCount: counts, FallbackKeyTypes: types}
		if b.prev != nil {
			if e.DeviceLists.Changed, e.DeviceLists.Left, err = b.parts.DeviceLists(ctx); err != nil {
				return err
			}
		}
		resp.Extensions.E2EE = e
	}
	if x.AccountData.on() {
		global, rooms, err := b.parts.AccountData(ctx)
		if err != nil {
			return err
		}
		ad := &accountDataResp{Global: global}
		scope := b.scope(x.AccountData, want, listsOf, subscribed)
		add := func(rooms map[string][]json.RawMessage, only map[string]bool) {
			for room, evs := range rooms {
				if scope[room] && (only == nil || only[room]) {
					if ad.Rooms == nil {
						ad.Rooms = map[string][]json.RawMessage{}
					}
					ad.Rooms[room] = evs
				}
			}
		}
		add(rooms, nil)
		// A room new to the connection comes with all its account data
		// (tags, read markers), not only what changed.
		newRooms := map[string]bool{}
		for room, w := range whole {
			if w && b.prev != nil {
				newRooms[room] = true
			}
		}
		if len(newRooms) > 0 {
			full, err := b.fullParts(ctx)
			if err != nil {
				return err
			}
			_, all, err := full.AccountData(ctx)
			if err != nil {
				return err
			}
			add(all, newRooms)
		}
		resp.Extensions.AccountData = ad
	}
	if !x.Receipts.on() && !x.Typing.on() {
		return nil
	}
	var receiptScope, typingScope map[string]bool
	if x.Receipts.on() {
		receiptScope = b.scope(x.Receipts, want, listsOf, subscribed)
		resp.Extensions.Receipts = &roomEvents{Rooms: map[string]json.RawMessage{}}
	}
	if x.Typing.on() {
		typingScope = b.scope(x.Typing, want, listsOf, subscribed)
		resp.Extensions.Typing = &roomEvents{Rooms: map[string]json.RawMessage{}}
	}
	for room := range want {
		if !receiptScope[room] && !typingScope[room] || b.memberships[room].Membership != "join" {
			continue
		}
		parts := b.parts
		if whole[room] {
			var err error
			if parts, err = b.fullParts(ctx); err != nil {
				return err
			}
		}
		typing, receipts, err := parts.Ephemeral(ctx, room)
		if err != nil {
			return err
		}
		if receiptScope[room] && receipts != nil {
			resp.Extensions.Receipts.Rooms[room] = receipts
		}
		if typingScope[room] && typing != nil {
			resp.Extensions.Typing.Rooms[room] = typing
		}
	}
	return nil
}

// scope returns the rooms an extension applies to: those of its lists
// (all lists when unset) and its rooms ("*" or unset: every
// subscription).
func (b *build) scope(s *scoped, want map[string]roomConfig, listsOf map[string][]string, subscribed map[string]bool) map[string]bool {
	out := map[string]bool{}
	lists := map[string]bool{}
	if s.Lists != nil {
		for _, l := range *s.Lists {
			lists[l] = true
		}
	}
	allSubs := s.Rooms == nil
	rooms := map[string]bool{}
	if s.Rooms != nil {
		for _, r := range *s.Rooms {
			if r == "*" {
				allSubs = true
			}
			rooms[r] = true
		}
	}
	for room := range want {
		if rooms[room] || (allSubs && subscribed[room]) {
			out[room] = true
			continue
		}
		for _, l := range listsOf[room] {
			if s.Lists == nil || lists[l] {
				out[room] = true
				break
			}
		}
	}
	return out
}

// isNotFound reports the roomserver's answers for a missing event or
// room.
func isNotFound(err error) bool {
	return errors.Is(err, rsapi.ErrNotFound) || errors.Is(err, rsapi.ErrRoomNotFound)
}
