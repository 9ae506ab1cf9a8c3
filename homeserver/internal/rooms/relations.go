package rooms

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// relationsResponse is the body of /relations and /threads.
type relationsResponse struct {
	Chunk     []events.Client `json:"chunk"`
	NextBatch string          `json:"next_batch,omitempty"`
	PrevBatch string          `json:"prev_batch,omitempty"`
}

// Relations is GET /v1/rooms/{roomID}/relations/{eventID}[/{relType}
// [/{eventType}]]: the events related to an event the user may see,
// newest first unless dir=f, paged by from/next_batch.
func (h *Handlers) Relations(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	v, err := h.roomViewer(r)
	if err != nil {
		return nil, err
	}
	parent, _, err := h.visibleEvent(ctx, v, httputil.PathParam(r, "eventID"))
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	dir := api.Backward
	switch q.Get("dir") {
	case "", "b":
	case "f":
		dir = api.Forward
	default:
		return nil, httputil.InvalidParam("dir must be b or f")
	}
	from, limit, err := pageParams(q)
	if err != nil {
		return nil, err
	}
	evs, err := h.rooms.RelatedEvents(ctx, api.RelationsRequest{
		RoomID: v.roomID, EventID: parent.EventID, RelType: httputil.PathParam(r, "relType"), EventType: httputil.PathParam(r, "eventType"),
		From: from, Dir: dir, Limit: limit,
	})
	if err != nil {
		return nil, err
	}
	resp := relationsResponse{}
	if len(evs) == limit && limit > 0 {
		resp.NextBatch = formatToken(evs[len(evs)-1].StreamPos)
	}
	resp.Chunk, err = h.visibleChunk(ctx, v, dev, evs)
	return resp, err
}

// visibleChunk returns the events v's user may see among evs, in order,
// formatted for dev.
func (h *Handlers) visibleChunk(ctx context.Context, v *viewer, dev hsapi.Device, evs []api.Event) ([]events.Client, error) {
	parsed, err := events.ParseAll(evs)
	if err != nil {
		return nil, err
	}
	shown, prevs, err := h.visibleEvents(ctx, v, parsed)
	if err != nil {
		return nil, err
	}
	f, err := h.newFormatter(ctx, dev, shown)
	if err != nil {
		return nil, err
	}
	return append([]events.Client{}, f.FormatAll(shown, prevs)...), nil
}

// pageParams reads the from token (0 when absent) and limit of a paged
// relations request.
func pageParams(q url.Values) (from int64, limit int, err error) {
	if limit, err = parseLimit(q.Get("limit"), defaultLimit); err != nil {
		return 0, 0, err
	}
	if tok := q.Get("from"); tok != "" {
		if from, err = parseToken(tok); err != nil {
			return 0, 0, err
		}
	}
	return from, limit, nil
}

// Threads is GET /v1/rooms/{roomID}/threads: the room's thread roots the
// user may see, most recently active first; include=participated keeps
// the threads the user sent or replied in.
func (h *Handlers) Threads(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	v, err := h.roomViewer(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	participant := ""
	switch q.Get("include") {
	case "", "all":
	case "participated":
		participant = dev.UserID
	default:
		return nil, httputil.InvalidParam("include must be all or participated")
	}
	from, limit, err := pageParams(q)
	if err != nil {
		return nil, err
	}
	roots, positions, err := h.rooms.Threads(ctx, v.roomID, participant, from, limit)
	if err != nil {
		return nil, err
	}
	resp := relationsResponse{}
	if len(positions) == limit && limit > 0 {
		resp.NextBatch = formatToken(positions[len(positions)-1])
	}
	resp.Chunk, err = h.visibleChunk(ctx, v, dev, roots)
	return resp, err
}

// TimestampToEvent is GET /v1/rooms/{roomID}/timestamp_to_event: the
// event the user may see closest to ts in direction dir.
func (h *Handlers) TimestampToEvent(r *http.Request) (any, error) {
	ctx := r.Context()
	v, err := h.roomViewer(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil || ts < 0 {
		return nil, httputil.InvalidParam("ts must be a timestamp in milliseconds")
	}
	var dir api.Direction
	switch q.Get("dir") {
	case "f":
		dir = api.Forward
	case "b":
		dir = api.Backward
	default:
		return nil, httputil.InvalidParam("dir must be b or f")
	}
	notFound := httputil.NotFound("no event found %s that time", map[api.Direction]string{api.Forward: "after", api.Backward: "before"}[dir])
	ev, err := h.rooms.EventNearTimestamp(ctx, v.roomID, ts, dir)
	if err != nil {
		if errors.Is(err, api.ErrNotFound) {
			return nil, notFound
		}
		return nil, err
	}
	e, err := events.Parse(ev)
	if err != nil {
		return nil, err
	}
	if ok, _, err := h.visible(ctx, v, e); err != nil {
		return nil, err
	} else if !ok {
		return nil, notFound
	}
	return map[string]any{"event_id": e.EventID, "origin_server_ts": e.OriginServerTS}, nil
}
