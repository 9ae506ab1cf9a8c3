package rooms

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Pagination tokens are "s" and a stream position N, e.g. "s123": the
// point just after the event at N (negative in history fetched from other
// servers, which sorts before the rest of the room). Paging backward from
// "sN" returns the events at N and before; paging forward, those after
// N. Like /sync's tokens will be, they are positions in the roomserver's
// output stream; anything after an "_" is ignored, so that sync may
// append positions of its other streams ("s123_45_6").
const tokenPrefix = "s"

// formatToken returns the token of the point just after pos.
func formatToken(pos int64) string { return tokenPrefix + strconv.FormatInt(pos, 10) }

// parseToken reads a pagination token: 400 M_INVALID_PARAM when it is not
// one.
func parseToken(tok string) (int64, error) {
	head, _, _ := strings.Cut(tok, "_")
	n, err := strconv.ParseInt(strings.TrimPrefix(head, tokenPrefix), 10, 64)
	if !strings.HasPrefix(head, tokenPrefix) || err != nil {
		return 0, httputil.InvalidParam("invalid pagination token %q", tok)
	}
	return n, nil
}

// Limits of /messages and /context.
const (
	defaultLimit = 10
	maxLimit     = 1000
	// maxFetches bounds the timeline pages read for one /messages
	// answer when history visibility or the filter hide events.
	maxFetches = 5
)

// parseLimit reads the limit query parameter: def when absent, at most
// maxLimit.
func parseLimit(raw string, def int) (int, error) {
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		return 0, httputil.InvalidParam("limit must be a non-negative integer")
	}
	return min(n, maxLimit), nil
}

// messagesResponse is the body of /messages.
type messagesResponse struct {
	Chunk []events.Client `json:"chunk"`
	Start string          `json:"start"`
	// End is omitted when there are no more events in that direction.
	End   string          `json:"end,omitempty"`
	State []events.Client `json:"state,omitempty"`
}

// Messages is GET /rooms/{roomID}/messages: pages of the timeline in
// either direction, from a token or (without one) from the end (dir=b) or
// the start (dir=f) of the room, stopping at to, filtered, and only the
// events history visibility lets the user see.
func (h *Handlers) Messages(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID := httputil.PathParam(r, "roomID")
	q := r.URL.Query()
	var dir api.Direction
	switch q.Get("dir") {
	case "b":
		dir = api.Backward
	case "f":
		dir = api.Forward
	case "":
		return nil, httputil.MissingParam("dir is required")
	default:
		return nil, httputil.InvalidParam("dir must be b or f")
	}
	filter, err := events.ParseFilter(q.Get("filter"))
	if err != nil {
		return nil, err
	}
	def := defaultLimit
	if filter.Limit != nil {
		def = min(*filter.Limit, maxLimit)
	}
	limit, err := parseLimit(q.Get("limit"), def)
	if err != nil {
		return nil, err
	}
	var from int64
	to := noBound
	if t := q.Get("from"); t != "" {
		if from, err = parseToken(t); err != nil {
			return nil, err
		}
	} else if dir == api.Backward {
		if from, err = h.rooms.LatestPos(ctx); err != nil {
			return nil, fmt.Errorf("read latest position: %w", err)
		}
	}
	if t := q.Get("to"); t != "" {
		if to, err = parseToken(t); err != nil {
			return nil, err
		}
	}
	v, err := h.viewerOf(ctx, roomID, dev.UserID)
	if err != nil {
		return nil, err
	}
	if !v.inRoom() {
		return nil, errNotInRoom()
	}
	resp := messagesResponse{Start: formatToken(from), Chunk: []events.Client{}}
	if q.Get("from") != "" {
		resp.Start = q.Get("from")
	}
	page, err := h.paginate(ctx, v, filter, from, to, dir, limit)
	if err != nil {
		return nil, err
	}
	if !page.exhausted {
		resp.End = formatToken(page.next)
	}
	f, err := h.newFormatter(ctx, dev, page.events)
	if err != nil {
		return nil, err
	}
	resp.Chunk = f.FormatAll(page.events, page.prevs)
	if filter.LazyLoadMembers && len(page.events) > 0 {
		members, err := h.senderMembers(ctx, page.events)
		if err != nil {
			return nil, err
		}
		resp.State = f.FormatAll(members, nil)
	}
	return resp, nil
}

// page is one page of timeline for a viewer.
type page struct {
	// events are the visible events, in the order of paging.
	events []events.Event
	// prevs are the state events the state events of events replaced.
	prevs map[string]*events.Event
	// next is the position to page on from.
	next int64
	// exhausted says there is nothing more in this direction (or the
	// to bound was reached).
	exhausted bool
}

// noBound is paginate's to when there is none.
const noBound int64 = math.MinInt64

// paginate reads the timeline of v's room from position from in
// direction dir, keeping the events the filter and history visibility
// let through, until limit events are kept, the timeline ends, or to
// (noBound for none) is reached. It reads at most maxFetches pages of the
// roomserver's timeline, so that a long run of hidden events ends in an
// empty chunk with a token rather than a long request. Paging backward
// past the start of what this server has of the room, it asks the other
// servers in it for the history before.
func (h *Handlers) paginate(ctx context.Context, v *viewer, filter events.Filter, from, to int64, dir api.Direction, limit int) (page, error) {
	p := page{next: from, prevs: map[string]*events.Event{}}
	if limit == 0 {
		return p, nil
	}
	if !filter.AllowsRoom(v.roomID) {
		p.exhausted = true
		return p, nil
	}
	for fetch := 0; fetch < maxFetches && len(p.events) < limit; fetch++ {
		start := p.next
		if dir == api.Backward {
			// Timeline excludes its starting position; the token's point
			// is just after next, so the event at next is included.
			start = p.next + 1
		}
		raw, err := h.rooms.Timeline(ctx, v.roomID, start, dir, limit)
		if err != nil {
			return page{}, fmt.Errorf("read timeline: %w", err)
		}
		evs, err := events.ParseAll(raw)
		if err != nil {
			return page{}, err
		}
		for _, e := range evs {
			if to != noBound && ((dir == api.Backward && e.StreamPos <= to) || (dir == api.Forward && e.StreamPos > to)) {
				p.next, p.exhausted = to, true
				return p, nil
			}
			if dir == api.Backward {
				p.next = e.StreamPos - 1
			} else {
				p.next = e.StreamPos
			}
			if !filter.Allows(e) {
				continue
			}
			ok, prev, err := h.visible(ctx, v, e)
			if err != nil {
				return page{}, err
			}
			if !ok {
				continue
			}
			p.events = append(p.events, e)
			if prev != nil {
				p.prevs[e.EventID] = prev
			}
			if len(p.events) == limit {
				return p, nil
			}
		}
		if len(raw) < limit {
			if dir == api.Backward && to == noBound && h.backfill(ctx, v.roomID, limit) {
				continue
			}
			p.exhausted = true
			return p, nil
		}
	}
	return p, nil
}

// backfill asks the other servers in the room for the history before
// what this server has, and reports whether any came. A failure is
// logged: the page ends there, as it would without federation.
func (h *Handlers) backfill(ctx context.Context, roomID string, limit int) bool {
	if h.remote == nil {
		return false
	}
	n, err := h.remote.BackfillRoom(ctx, roomID, limit)
	if err != nil {
		httputil.Log(ctx).WithError(err).WithField("room_id", roomID).Warn("backfill")
	}
	return n > 0
}

// senderMembers returns the member events of the senders of evs, as they
// were before the first of evs (lazy-loading members).
func (h *Handlers) senderMembers(ctx context.Context, evs []events.Event) ([]events.Event, error) {
	seen := map[string]bool{}
	var keys []api.StateKey
	for _, e := range evs {
		if !seen[e.Sender] {
			seen[e.Sender] = true
			keys = append(keys, api.StateKey{Type: typeMember, StateKey: e.Sender})
		}
	}
	raw, err := h.rooms.StateEventsBefore(ctx, evs[0].EventID, keys)
	if err != nil {
		return nil, fmt.Errorf("read members before %s: %w", evs[0].EventID, err)
	}
	return events.ParseAll(raw)
}
