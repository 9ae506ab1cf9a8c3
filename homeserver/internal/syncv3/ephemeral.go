package syncv3

import (
	"context"
	"encoding/json"
)

// loadReceiptRooms finds, once per response, the rooms with receipts
// since the last sync.
func (b *builder) loadReceiptRooms(ctx context.Context) error {
	if b.initial() || b.since.Receipts >= b.upTo.Receipts {
		return nil
	}
	rooms, err := b.h.Store.RoomsWithReceiptsSince(ctx, b.since.Receipts, b.upTo.Receipts)
	if err != nil {
		return err
	}
	b.receiptRooms = rooms
	return nil
}

// ephemeral fills a joined room's typing and receipts.
func (b *builder) ephemeral(ctx context.Context, roomID string, jr *joinedRoom) error {
	filter := b.req.filter.Room.Ephemeral
	if filter.Allows(eventOfType("m.typing")) {
		var users []string
		changed := false
		if b.initial() {
			users = b.h.Typing.Typing(roomID)
			changed = len(users) > 0
		} else {
			users, changed = b.h.Typing.ChangedSince(roomID, b.since.Typing, b.upTo.Typing)
		}
		if changed {
			shown := []string{}
			for _, u := range users {
				if !b.ignored[u] {
					shown = append(shown, u)
				}
			}
			ev, err := json.Marshal(map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": shown}})
			if err != nil {
				return err
			}
			jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
		}
	}
	if !filter.Allows(eventOfType("m.receipt")) || (!b.initial() && !b.receiptRooms[roomID]) {
		return nil
	}
	since := b.since.Receipts
	if b.initial() {
		since = 0
	}
	receipts, err := b.h.Store.ReceiptsSince(ctx, roomID, since, b.upTo.Receipts)
	if err != nil {
		return err
	}
	type receipt struct {
		TS       int64  `json:"ts"`
		ThreadID string `json:"thread_id,omitempty"`
	}
	// content is event id → receipt type → user id → receipt.
	content := map[string]map[string]map[string]receipt{}
	me := b.req.dev.UserID
	for _, r := range receipts {
		if (r.Type == "m.read.private" && r.UserID != me) || b.ignored[r.UserID] {
			continue
		}
		if content[r.EventID] == nil {
			content[r.EventID] = map[string]map[string]receipt{}
		}
		if content[r.EventID][r.Type] == nil {
			content[r.EventID][r.Type] = map[string]receipt{}
		}
		content[r.EventID][r.Type][r.UserID] = receipt{TS: r.TS, ThreadID: r.ThreadID}
	}
	if len(content) == 0 {
		return nil
	}
	ev, err := json.Marshal(map[string]any{"type": "m.receipt", "content": content})
	if err != nil {
		return err
	}
	jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
	return nil
}
