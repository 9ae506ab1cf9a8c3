package query

import (
	"context"

	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// RelatedEvents implements api.Relations.
func (q *Reader) RelatedEvents(ctx context.Context, req api.RelationsRequest) ([]api.Event, error) {
	if _, err := q.roomIdentity(ctx, req.RoomID); err != nil {
		return nil, err
	}
	nids, err := q.store.Relations(ctx, storage.RelationsQuery{
		RelatesTo: req.EventID, RelType: req.RelType, EventType: req.EventType,
		From: req.From, Forward: req.Dir == api.Forward, Limit: req.Limit,
	})
	if err != nil {
		return nil, err
	}
	evs, err := q.events.ByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	return q.events.APIEvents(ctx, evs)
}

// Aggregations implements api.Relations.
func (q *Reader) Aggregations(ctx context.Context, userID string, eventIDs []string) (map[string]api.Aggregation, error) {
	sums, err := q.store.RelationSummaries(ctx, eventIDs, []string{api.RelThread, api.RelReplace})
	if err != nil {
		return nil, err
	}
	out := map[string]api.Aggregation{}
	var roots []string
	for _, s := range sums {
		latest, err := q.events.ByNID(ctx, []int64{s.LatestNID})
		if err != nil {
			return nil, err
		}
		ev, err := q.events.APIEvent(ctx, latest[0])
		if err != nil {
			return nil, err
		}
		agg := out[s.RelatesTo]
		switch s.RelType {
		case api.RelThread:
			agg.Thread = &api.ThreadSummary{Latest: ev, Count: s.Count}
			roots = append(roots, s.RelatesTo)
		case api.RelReplace:
			// Only edits by the original sender count (spec: "Validity
			// of replacement events"); the latest valid one is taken.
			if ok, err := q.validEdit(ctx, s.RelatesTo, latest[0].Sender); err != nil {
				return nil, err
			} else if ok {
				agg.Replace = &ev
			}
		}
		out[s.RelatesTo] = agg
	}
	if len(roots) > 0 && userID != "" {
		part, err := q.store.Participated(ctx, userID, roots)
		if err != nil {
			return nil, err
		}
		originals, err := q.events.ByID(ctx, roots)
		if err != nil {
			return nil, err
		}
		for _, id := range roots {
			agg := out[id]
			agg.Thread.CurrentUserParticipated = part[id] || (originals[id] != nil && originals[id].Sender == userID)
			out[id] = agg
		}
	}
	refs, err := q.references(ctx, eventIDs)
	if err != nil {
		return nil, err
	}
	for id, r := range refs {
		agg := out[id]
		agg.References = r
		out[id] = agg
	}
	return out, nil
}

// validEdit reports whether an edit by editor may replace eventID.
func (q *Reader) validEdit(ctx context.Context, eventID, editor string) (bool, error) {
	evs, err := q.events.ByID(ctx, []string{eventID})
	if err != nil {
		return false, err
	}
	e, ok := evs[eventID]
	return ok && e.Sender == editor && !e.IsState(), nil
}

// references lists the events referencing each of eventIDs.
func (q *Reader) references(ctx context.Context, eventIDs []string) (map[string][]string, error) {
	sums, err := q.store.RelationSummaries(ctx, eventIDs, []string{api.RelReference})
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, s := range sums {
		nids, err := q.store.Relations(ctx, storage.RelationsQuery{RelatesTo: s.RelatesTo, RelType: api.RelReference, Forward: true, Limit: 100})
		if err != nil {
			return nil, err
		}
		evs, err := q.events.ByNID(ctx, nids)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			out[s.RelatesTo] = append(out[s.RelatesTo], e.EventID)
		}
	}
	return out, nil
}

// Threads implements api.Relations.
func (q *Reader) Threads(ctx context.Context, roomID, participatedBy string, from int64, limit int) ([]api.Event, []int64, error) {
	r, err := q.roomIdentity(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	ids, positions, err := q.store.ThreadRoots(ctx, r.NID, participatedBy, from, limit)
	if err != nil {
		return nil, nil, err
	}
	evs, err := q.events.ByID(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	var roots []api.Event
	var pos []int64
	for i, id := range ids {
		e, ok := evs[id]
		if !ok || e.Rejected != "" || e.SoftFailed {
			continue // a root we do not hold (yet) or may not show
		}
		ev, err := q.events.APIEvent(ctx, e)
		if err != nil {
			return nil, nil, err
		}
		roots, pos = append(roots, ev), append(pos, positions[i])
	}
	return roots, pos, nil
}

var _ api.Relations = (*Reader)(nil)
