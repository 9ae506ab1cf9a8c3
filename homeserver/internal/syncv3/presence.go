package syncv3

import (
	"context"
	"encoding/json"
	"errors"
	"time"

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
	cur, err := h.Store.GetPresence(ctx, userID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.Log.WithError(err).Warn("read presence")
		return
	}
	if err == nil && cur.State == state && now.Sub(time.UnixMilli(cur.LastActiveTS)) < presenceRefresh {
		return
	}
	cur.UserID, cur.State, cur.LastActiveTS = userID, state, now.UnixMilli()
	pos, err := h.Store.PutPresence(ctx, cur)
	if err != nil {
		h.Log.WithError(err).Warn("store presence")
		return
	}
	h.Notifier.OnPresence(userID, pos)
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
		if p.UserID != me && !b.h.Notifier.SharesRoom(me, p.UserID) {
			continue
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
