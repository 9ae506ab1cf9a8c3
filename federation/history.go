package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Bounds of the history endpoints.
const (
	maxBackfill      = 100
	maxMissingEvents = 20
)

// walkBack returns the events found going back from the given ids along
// prev_events, breadth first, at most limit, without the events of stop
// nor those below minDepth; from themselves are included when
// includeFrom is set. Events of another room, or that the roomserver
// does not serve (rejected, soft-failed, unknown), end their branch.
func (c *Component) walkBack(ctx context.Context, roomID string, from, stop []string, includeFrom bool, minDepth int64, limit int) ([]rsapi.Event, error) {
	seen := map[string]bool{}
	for _, id := range stop {
		seen[id] = true
	}
	var out []rsapi.Event
	queue := []string{}
	for _, id := range from {
		if includeFrom {
			queue = append(queue, id)
			continue
		}
		ev, err := c.rooms.Event(ctx, id)
		if err != nil || ev.RoomID != roomID {
			continue
		}
		queue = append(queue, prevEventsOf(ev)...)
	}
	for len(queue) > 0 && len(out) < limit {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		ev, err := c.rooms.Event(ctx, id)
		if errors.Is(err, rsapi.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		pdu, err := ev.PDU()
		if err != nil || ev.RoomID != roomID || pdu.Depth() < minDepth {
			continue
		}
		out = append(out, ev)
		queue = append(queue, pdu.PrevEventIDs()...)
	}
	return out, nil
}

// prevEventsOf returns an event's prev_events ids.
func prevEventsOf(ev rsapi.Event) []string {
	pdu, err := ev.PDU()
	if err != nil {
		return nil
	}
	return pdu.PrevEventIDs()
}

// Backfill answers GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=:
// the events before (and including) the v events, newest first, those
// the server may not read redacted (forServer).
func (c *Component) Backfill(r *http.Request) (any, error) {
	ctx, roomID := r.Context(), httputil.PathParam(r, "roomID")
	q := r.URL.Query()
	from := q["v"]
	if len(from) == 0 {
		return nil, httputil.MissingParam("v is required")
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 {
		return nil, httputil.InvalidParam("limit must be a positive number")
	}
	if err := c.checkInRoom(ctx, roomID, originOf(r)); err != nil {
		return nil, err
	}
	evs, err := c.walkBack(ctx, roomID, from, nil, true, 0, min(limit, maxBackfill))
	if err != nil {
		return nil, err
	}
	if evs, err = c.forServer(ctx, originOf(r), evs); err != nil {
		return nil, err
	}
	return transactionBody{Origin: string(c.serverName), OriginServerTS: c.now().UnixMilli(), PDUs: jsonsOf(evs)}, nil
}

// GetMissingEvents answers POST /_matrix/federation/v1/get_missing_events/{roomId}:
// the events between earliest_events and latest_events, oldest first.
func (c *Component) GetMissingEvents(r *http.Request) (any, error) {
	ctx, roomID := r.Context(), httputil.PathParam(r, "roomID")
	var req fclient.MissingEvents
	if err := decodeContent(r, &req); err != nil {
		return nil, err
	}
	if req.Limit <= 0 || req.Limit > maxBackfill {
		req.Limit = 10 // the spec's default
	}
	if err := c.checkInRoom(ctx, roomID, originOf(r)); err != nil {
		return nil, err
	}
	evs, err := c.walkBack(ctx, roomID, req.LatestEvents, req.EarliestEvents, false, int64(req.MinDepth), req.Limit)
	if err != nil {
		return nil, err
	}
	if evs, err = c.forServer(ctx, originOf(r), evs); err != nil {
		return nil, err
	}
	sortByDepth(evs)
	return map[string][]json.RawMessage{"events": jsonsOf(evs)}, nil
}

// sortByDepth orders events oldest first (depth, then id).
func sortByDepth(evs []rsapi.Event) {
	depth := func(e rsapi.Event) int64 {
		if p, err := e.PDU(); err == nil {
			return p.Depth()
		}
		return 0
	}
	sort.SliceStable(evs, func(i, j int) bool { return depth(evs[i]) < depth(evs[j]) })
}

// fetchMissing asks origin for the events between what this server has
// of the room and pdu, when some of pdu's prev_events are unknown here,
// and inputs those it gets, oldest first, each checked as any received
// PDU. It gives up quietly: pdu's own input then reports the gap.
//
// The prev events in known are taken as known: PDUs of the same
// transaction, given to the roomserver with this one. The events fetched
// go through the room's policy server as received PDUs do (down is
// policySigned's).
func (c *Component) fetchMissing(ctx context.Context, origin spec.ServerName, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU, known map[string]bool, down map[spec.ServerName]bool) error {
	var ask []string
	for _, id := range pdu.PrevEventIDs() {
		if !known[id] {
			ask = append(ask, id)
		}
	}
	if len(ask) == 0 || origin == c.serverName {
		return nil
	}
	// Rejected, soft-failed and outlier prev events are here: only
	// unknown ones are fetched (an outlier's state is lacksState's).
	missing, err := c.rooms.UnknownEvents(ctx, ask)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	roomID := pdu.RoomID().String()
	ext, err := c.rooms.ForwardExtremities(ctx, roomID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.client.LookupMissingEvents(ctx, c.serverName, origin, roomID, fclient.MissingEvents{
		Limit: maxMissingEvents, EarliestEvents: ext, LatestEvents: []string{pdu.EventID()},
	}, v.Version())
	if err != nil {
		c.log.WithError(err).WithFields(map[string]any{fieldOrigin: origin, fieldRoomID: roomID}).Info("get missing events")
		return nil
	}
	var got []gomatrixserverlib.PDU
	for _, raw := range resp.Events {
		p, err := c.checkPDU(ctx, v, json.RawMessage(raw))
		if err != nil || p.RoomID().String() != roomID {
			continue
		}
		got = append(got, p)
	}
	sort.SliceStable(got, func(i, j int) bool { return got[i].Depth() < got[j].Depth() })
	for _, p := range got {
		p, err := c.policySigned(ctx, p, down)
		if err != nil {
			return err
		}
		gap, err := c.lacksState(ctx, p, nil)
		if err != nil {
			return err
		}
		if gap {
			_, err = c.inputWithState(ctx, origin, v, p)
		} else {
			_, err = c.inputOne(ctx, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
