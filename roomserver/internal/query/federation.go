package query

import (
	"context"
	"sort"
	"strings"

	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/internal/state"
)

// AuthChain implements api.Federator: a breadth-first walk of auth_events.
func (q *Reader) AuthChain(ctx context.Context, eventIDs []string) ([]api.Event, error) {
	seen := map[string]bool{}
	var chain []*state.Event
	frontier := eventIDs
	for len(frontier) > 0 {
		evs, err := q.events.ByID(ctx, frontier)
		if err != nil {
			return nil, err
		}
		var next []string
		for _, id := range frontier {
			e, ok := evs[id]
			if !ok {
				continue
			}
			for _, a := range e.PDU.AuthEventIDs() {
				if !seen[a] {
					seen[a] = true
					next = append(next, a)
				}
			}
		}
		// The next round loads them; they join the chain then.
		frontier = next
		if len(next) == 0 {
			break
		}
		loaded, err := q.events.ByID(ctx, next)
		if err != nil {
			return nil, err
		}
		for _, id := range next {
			if e, ok := loaded[id]; ok {
				chain = append(chain, e)
			}
		}
	}
	return q.events.APIEvents(ctx, chain)
}

// UnknownEvents implements api.Federator.
func (q *Reader) UnknownEvents(ctx context.Context, ids []string) ([]string, error) {
	known, err := q.events.ByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		if _, ok := known[id]; !ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// StatelessEvents implements api.Federator.
func (q *Reader) StatelessEvents(ctx context.Context, ids []string) ([]string, error) {
	known, err := q.events.ByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		if e, ok := known[id]; !ok || e.Outlier {
			out = append(out, id)
		}
	}
	return out, nil
}

// JoinedServers implements api.Federator.
func (q *Reader) JoinedServers(ctx context.Context, roomID string) ([]string, error) {
	r, err := q.roomIdentity(ctx, roomID)
	if err != nil {
		return nil, err
	}
	users, err := q.store.MembersWith(ctx, r.NID, "join")
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, u := range users {
		if _, server, ok := strings.Cut(u, ":"); ok {
			set[server] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}

// ForwardExtremities implements api.Federator.
func (q *Reader) ForwardExtremities(ctx context.Context, roomID string) ([]string, error) {
	r, err := q.room(ctx, roomID)
	if err != nil {
		return nil, err
	}
	log, err := q.store.Extremities(ctx, r.NID)
	if err != nil {
		return nil, err
	}
	evs, err := q.events.Extremities(ctx, log)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.EventID
	}
	sort.Strings(ids)
	return ids, nil
}
