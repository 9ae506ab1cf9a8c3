package syncv3

import (
	"context"
	"encoding/json"
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
	if b.h.Ignored == nil {
		b.ignored = map[string]bool{}
		return b.ignored, nil
	}
	var err error
	b.ignored, err = b.h.Ignored.IgnoredUsers(ctx, b.req.dev.UserID)
	return b.ignored, err
}
