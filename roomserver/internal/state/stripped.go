package state

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// strippedTypes are the state events a potential joiner is shown (spec:
// "Stripped state"), with m.room.create first: since v1.16 it is required,
// and given as the full PDU so that the receiver can check the room id
// (v12 room ids are the create event's hash).
var strippedTypes = []string{
	"m.room.create", "m.room.name", "m.room.avatar", "m.room.topic", "m.room.join_rules",
	"m.room.canonical_alias", "m.room.encryption",
}

// Lookup finds the nids of a (type, state key) pair; ok is false when no
// state ever had it.
type Lookup func(typ, stateKey string) (nids storage.StateKeyNIDs, ok bool, err error)

// StrippedState returns the stripped state of st that invites and knocks
// carry: the create event in full, the others stripped to type,
// state_key, sender and content.
func (c *Events) StrippedState(ctx context.Context, st storage.StateMap, lookup Lookup) ([]json.RawMessage, error) {
	var nids []int64
	for _, typ := range strippedTypes {
		k, ok, err := lookup(typ, "")
		if err != nil {
			return nil, err
		}
		if nid, found := st[k]; ok && found {
			nids = append(nids, nid)
		}
	}
	evs, err := c.ByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, len(evs))
	for _, e := range evs {
		if e.PDU.Type() == "m.room.create" {
			out = append(out, json.RawMessage(e.JSON))
			continue
		}
		stripped, err := json.Marshal(struct {
			Type     string          `json:"type"`
			StateKey string          `json:"state_key"`
			Sender   string          `json:"sender"`
			Content  json.RawMessage `json:"content"`
		}{e.PDU.Type(), *e.PDU.StateKey(), string(e.PDU.SenderID()), e.PDU.Content()})
		if err != nil {
			return nil, fmt.Errorf("strip %s: %w", e.EventID, err)
		}
		out = append(out, stripped)
	}
	return out, nil
}
