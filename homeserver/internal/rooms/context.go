package rooms

import (
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// contextResponse is the body of /context.
type contextResponse struct {
	Event        events.Client   `json:"event"`
	EventsBefore []events.Client `json:"events_before"`
	EventsAfter  []events.Client `json:"events_after"`
	Start        string          `json:"start"`
	End          string          `json:"end"`
	State        []events.Client `json:"state"`
}

// Context is GET /rooms/{roomID}/context/{eventID}: the event, up to
// limit events around it (half before, as Synapse splits it), tokens to
// page on from either side, and the room state at the last event
// returned. The filter applies to the events around and to the state, not
// to the event itself; history visibility applies to all.
func (h *Handlers) Context(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID := httputil.PathParam(r, "roomID")
	q := r.URL.Query()
	filter, err := events.ParseFilter(q.Get("filter"))
	if err != nil {
		return nil, err
	}
	limit, err := parseLimit(q.Get("limit"), defaultLimit)
	if err != nil {
		return nil, err
	}
	v, err := h.viewerOf(ctx, roomID, dev.UserID)
	if err != nil {
		return nil, err
	}
	if !v.inRoom() {
		return nil, errNotInRoom()
	}
	e, prev, err := h.visibleEvent(ctx, v, httputil.PathParam(r, "eventID"))
	if err != nil {
		return nil, err
	}
	beforeLimit := limit / 2
	before, err := h.paginate(ctx, v, filter, e.StreamPos-1, noBound, api.Backward, beforeLimit)
	if err != nil {
		return nil, err
	}
	after, err := h.paginate(ctx, v, filter, e.StreamPos, noBound, api.Forward, limit-beforeLimit)
	if err != nil {
		return nil, err
	}
	// The state at the last event returned: the newest of the event and
	// those after it.
	last := e
	if n := len(after.events); n > 0 {
		last = after.events[n-1]
	}
	state, err := h.stateAfter(ctx, last, nil)
	if err != nil {
		return nil, err
	}
	var kept []events.Event
	for _, s := range state {
		if filter.Allows(s) {
			kept = append(kept, s)
		}
	}
	if filter.LazyLoadMembers {
		senders := map[string]bool{e.Sender: true}
		for _, list := range [][]events.Event{before.events, after.events} {
			for _, x := range list {
				senders[x.Sender] = true
			}
		}
		lazy := kept[:0]
		for _, s := range kept {
			if s.Type != typeMember || senders[*s.StateKey] {
				lazy = append(lazy, s)
			}
		}
		kept = lazy
	}
	f, err := h.newFormatter(ctx, dev, []events.Event{e}, before.events, after.events)
	if err != nil {
		return nil, err
	}
	prevs := map[string]*events.Event{e.EventID: prev}
	for k, p := range before.prevs {
		prevs[k] = p
	}
	for k, p := range after.prevs {
		prevs[k] = p
	}
	return contextResponse{
		Event:        f.Format(e, prev),
		EventsBefore: f.FormatAll(before.events, prevs),
		EventsAfter:  f.FormatAll(after.events, prevs),
		Start:        formatToken(before.next),
		End:          formatToken(after.next),
		State:        f.FormatAll(kept, nil),
	}, nil
}
