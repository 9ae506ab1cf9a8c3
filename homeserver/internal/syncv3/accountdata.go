package syncv3

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// Account data types the server reads.
const (
	typeIgnoredUsers = "m.ignored_user_list"
	typePushRules    = "m.push_rules"
)

// accountDataEvent is an account data event as /sync sends it.
type accountDataEvent struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// accountData fills the global account data and collects the per-room
// account data changed since the last sync (all of it initially).
func (b *builder) accountData(ctx context.Context, resp *response) error {
	if !b.initial() && b.since.AccountData >= b.upTo.AccountData {
		return nil
	}
	items, err := b.h.Store.AccountDataSince(ctx, b.req.dev.UserID, b.since.AccountData, b.upTo.AccountData)
	if err != nil {
		return err
	}
	sentRules := false
	for _, a := range items {
		content := a.Content
		if a.RoomID == "" && a.Type == typePushRules {
			if b.h.PushRules == nil {
				continue
			}
			if content, err = b.h.PushRules.AccountDataContent(ctx, b.req.dev.UserID); err != nil {
				return err
			}
			sentRules = true
		}
		ev, err := json.Marshal(accountDataEvent{Type: a.Type, Content: content})
		if err != nil {
			return err
		}
		if a.RoomID == "" {
			if b.req.filter.AccountData.Allows(eventOfType(a.Type)) {
				resp.AccountData.Events = append(resp.AccountData.Events, ev)
			}
			continue
		}
		if b.req.filter.Room.AccountData.Allows(eventOfType(a.Type)) {
			if b.roomAccountData == nil {
				b.roomAccountData = map[string][]json.RawMessage{}
			}
			b.roomAccountData[a.RoomID] = append(b.roomAccountData[a.RoomID], ev)
		}
	}
	if b.initial() && !sentRules && b.h.PushRules != nil && b.req.filter.AccountData.Allows(eventOfType(typePushRules)) {
		// The user never changed a rule: the defaults are still theirs.
		content, err := b.h.PushRules.AccountDataContent(ctx, b.req.dev.UserID)
		if err != nil {
			return err
		}
		ev, err := json.Marshal(accountDataEvent{Type: typePushRules, Content: content})
		if err != nil {
			return err
		}
		resp.AccountData.Events = append(resp.AccountData.Events, ev)
	}
	return nil
}

// ignoredUsers returns the users the syncing user ignores, read once per
// response.
func (b *builder) ignoredUsers(ctx context.Context) (map[string]bool, error) {
	if b.ignored != nil {
		return b.ignored, nil
	}
	var err error
	b.ignored, err = b.h.ignored.get(ctx, b.h, b.req.dev.UserID)
	return b.ignored, err
}

// ignoredCache keeps each user's ignored users until their account data
// changes.
type ignoredCache struct {
	mu    sync.Mutex
	users map[string]ignoredEntry
}

type ignoredEntry struct {
	// pos is the user's account data position when read.
	pos     int64
	ignored map[string]bool
}

// get returns userID's ignored users, from the cache unless their account
// data changed since it was read.
func (c *ignoredCache) get(ctx context.Context, h *Handlers, userID string) (map[string]bool, error) {
	pos := h.Notifier.AccountDataPos(userID)
	c.mu.Lock()
	e, ok := c.users[userID]
	c.mu.Unlock()
	if ok && e.pos >= pos {
		return e.ignored, nil
	}
	ignored := map[string]bool{}
	raw, err := h.Store.GetAccountData(ctx, userID, "", typeIgnoredUsers)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		var content struct {
			IgnoredUsers map[string]json.RawMessage `json:"ignored_users"`
		}
		_ = json.Unmarshal(raw, &content)
		for u := range content.IgnoredUsers {
			ignored[u] = true
		}
	}
	c.mu.Lock()
	if c.users == nil {
		c.users = map[string]ignoredEntry{}
	}
	c.users[userID] = ignoredEntry{pos: pos, ignored: ignored}
	c.mu.Unlock()
	return ignored, nil
}
