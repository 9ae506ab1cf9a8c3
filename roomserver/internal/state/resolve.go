package state

import (
	"context"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// UserIDForSender maps a sender to a user id. This server runs no room
// version with pseudonymous sender ids, so the sender is the user id.
func UserIDForSender(_ spec.RoomID, senderID spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(senderID), true)
}

// Resolver merges diverging room states with the room version's state
// resolution algorithm.
type Resolver struct {
	events *Events
}

// NewResolver returns a resolver loading events through events.
func NewResolver(events *Events) *Resolver { return &Resolver{events: events} }

// Resolve returns the state that results from the given state sets (the
// states after each forward extremity, or after each prev event).
func (r *Resolver) Resolve(ctx context.Context, version gomatrixserverlib.RoomVersion, sets []storage.StateMap) (storage.StateMap, error) {
	switch len(sets) {
	case 0:
		return storage.StateMap{}, nil
	case 1:
		return sets[0], nil
	}
	if allEqual(sets) {
		return sets[0], nil
	}
	pduSets := make([][]gomatrixserverlib.PDU, len(sets))
	nidOf := map[string]int64{}
	for i, set := range sets {
		nids := make([]int64, 0, len(set))
		for _, nid := range set {
			nids = append(nids, nid)
		}
		evs, err := r.events.ByNID(ctx, nids)
		if err != nil {
			return nil, fmt.Errorf("load state set: %w", err)
		}
		for _, e := range evs {
			pduSets[i] = append(pduSets[i], e.PDU)
			nidOf[e.EventID] = e.NID
		}
	}
	authChain, err := r.authChain(ctx, pduSets)
	if err != nil {
		return nil, err
	}
	isRejected := func(eventID string) bool {
		evs, err := r.events.ByID(ctx, []string{eventID})
		if err != nil {
			return false
		}
		e, ok := evs[eventID]
		return ok && e.Rejected != ""
	}
	resolved, err := gomatrixserverlib.ResolveConflictsNew(version, pduSets, authChain, UserIDForSender, isRejected)
	if err != nil {
		return nil, fmt.Errorf("resolve state: %w", err)
	}
	out := make(storage.StateMap, len(resolved))
	for _, pdu := range resolved {
		nid, ok := nidOf[pdu.EventID()]
		if !ok {
			// Resolution may pick an auth event that was in no set.
			evs, err := r.events.ByID(ctx, []string{pdu.EventID()})
			if err != nil || evs[pdu.EventID()] == nil {
				return nil, fmt.Errorf("resolved state names unknown event %s", pdu.EventID())
			}
			nid = evs[pdu.EventID()].NID
		}
		e, err := r.events.ByNID(ctx, []int64{nid})
		if err != nil {
			return nil, err
		}
		out[e[0].Tuple] = nid
	}
	return out, nil
}

// authChain returns the given events and every event in their auth
// chains. (gomatrixserverlib's v2.1 walk looks the conflicted events
// themselves up in the auth events, so they must be included.)
func (r *Resolver) authChain(ctx context.Context, sets [][]gomatrixserverlib.PDU) ([]gomatrixserverlib.PDU, error) {
	seen := map[string]bool{}
	var queue []string
	var out []gomatrixserverlib.PDU
	for _, set := range sets {
		for _, pdu := range set {
			if !seen[pdu.EventID()] {
				seen[pdu.EventID()] = true
				out = append(out, pdu)
			}
			queue = append(queue, pdu.AuthEventIDs()...)
		}
	}
	for len(queue) > 0 {
		var batch []string
		for _, id := range queue {
			if !seen[id] {
				seen[id] = true
				batch = append(batch, id)
			}
		}
		queue = nil
		if len(batch) == 0 {
			break
		}
		evs, err := r.events.ByID(ctx, batch)
		if err != nil {
			return nil, fmt.Errorf("load auth chain: %w", err)
		}
		for _, id := range batch {
			e, ok := evs[id]
			if !ok {
				return nil, fmt.Errorf("auth chain: unknown event %s", id)
			}
			out = append(out, e.PDU)
			queue = append(queue, e.PDU.AuthEventIDs()...)
		}
	}
	return out, nil
}

func allEqual(sets []storage.StateMap) bool {
	for _, s := range sets[1:] {
		if len(s) != len(sets[0]) {
			return false
		}
		for k, v := range sets[0] {
			if s[k] != v {
				return false
			}
		}
	}
	return true
}
