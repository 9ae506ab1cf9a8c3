package syncv3

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// Presence timings.
const (
	// presenceRefresh is how stale last_active may grow before a sync
	// writes it again: presence must not cost a write per sync.
	presenceRefresh = time.Minute
	// IdleAfter turns online into unavailable when the user has not
	// synced (or set their presence) for that long.
	IdleAfter = 5 * time.Minute
)

// touchPresence records that userID is syncing with set_presence p.
func (h *Handlers) touchPresence(ctx context.Context, userID, p string) {
	state := p
	switch p {
	case "offline":
		// The client asks not to be marked online.
		return
	case "":
		state = "online"
	}
	now := h.now()
	if h.presence.fresh(userID, state, now) {
		return
	}
	cur, err := h.Store.GetPresence(ctx, userID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.Log.WithError(err).Warn("read presence")
		return
	}
	if err == nil && cur.State == state && now.Sub(time.UnixMilli(cur.LastActiveTS)) < presenceRefresh {
		h.presence.set(userID, state, time.UnixMilli(cur.LastActiveTS))
		return
	}
	cur.UserID, cur.State, cur.LastActiveTS = userID, state, now.UnixMilli()
	pos, err := h.Store.PutPresence(ctx, cur)
	if err != nil {
		h.Log.WithError(err).Warn("store presence")
		return
	}
	h.presence.set(userID, state, now)
	h.Notifier.OnPresence(userID, pos)
	if h.Federation != nil {
		if err := h.Federation.SendPresence(ctx, hsapi.Presence{UserID: userID, State: state, StatusMsg: cur.StatusMsg,
			CurrentlyActive: state == "online"}); err != nil {
			h.Log.WithError(err).Warn("queue presence for other servers")
		}
	}
}

// presenceCache remembers what each user's stored presence was last
// seen to be, so that a sync costs no presence query while it is fresh.
type presenceCache struct {
	mu    sync.Mutex
	users map[string]presenceSeen
}

type presenceSeen struct {
	state      string
	lastActive time.Time
}

// fresh reports whether userID's stored presence is state and recent.
func (c *presenceCache) fresh(userID, state string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.users[userID]
	return ok && s.state == state && now.Sub(s.lastActive) < presenceRefresh
}

func (c *presenceCache) set(userID, state string, lastActive time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.users == nil {
		c.users = map[string]presenceSeen{}
	}
	c.users[userID] = presenceSeen{state: state, lastActive: lastActive}
}

// presenceEvent is an m.presence event.
type presenceEvent struct {
	Type    string                  `json:"type"`
	Sender  string                  `json:"sender"`
	Content streams.PresenceContent `json:"content"`
}

// presence fills the presence of the users who share a room with the
// syncing user and changed since the last sync.
func (b *builder) presence(ctx context.Context, resp *response) error {
	if !b.h.Presence || (!b.initial() && b.since.Presence >= b.upTo.Presence) {
		return nil
	}
	changes, err := b.h.Store.PresenceSince(ctx, b.since.Presence, b.upTo.Presence)
	if err != nil {
		return err
	}
	me := b.req.dev.UserID
	for _, p := range changes {
		if p.UserID != me {
			shares, err := b.h.Notifier.SharesRoomWith(ctx, b.h.Store, me, p.UserID)
			if err != nil {
				return err
			}
			if !shares {
				continue
			}
		}
		if !b.req.filter.Presence.Allows(eventFrom("m.presence", p.UserID)) {
			continue
		}
		ev, err := json.Marshal(presenceEvent{Type: "m.presence", Sender: p.UserID, Content: streams.PresenceOf(p, b.now, IdleAfter)})
		if err != nil {
			return err
		}
		resp.Presence.Events = append(resp.Presence.Events, ev)
	}
	return nil
}
