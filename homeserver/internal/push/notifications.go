package push

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Page sizes of /notifications.
const (
	defaultNotificationsLimit = 20
	maxNotificationsLimit     = 100
)

// notificationJSON is one entry of GET /notifications.
type notificationJSON struct {
	Actions any    `json:"actions"`
	Event   any    `json:"event"`
	Read    bool   `json:"read"`
	RoomID  string `json:"room_id"`
	TS      int64  `json:"ts"`
}

// Notifications serves GET /notifications: the events that notified the
// user, newest first, paged by the from token (a stream position), only
// highlights with only=highlight.
func (h *Handlers) Notifications(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	q := r.URL.Query()
	var from int64
	if s := q.Get("from"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			return nil, httputil.InvalidParam("bad from token")
		}
		from = v
	}
	limit := defaultNotificationsLimit
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return nil, httputil.InvalidParam("limit must be a non-negative integer")
		}
		limit = min(v, maxNotificationsLimit)
	}
	only := q.Get("only")
	if only != "" && only != "highlight" {
		return nil, httputil.InvalidParam(`only may be "highlight"`)
	}
	out := map[string]any{"notifications": []notificationJSON{}}
	if limit == 0 {
		return out, nil
	}
	actions, err := h.store.PushActions(ctx, dev.UserID, from, limit, only == "highlight")
	if err != nil {
		return nil, err
	}
	var evs []rsapi.Event
	var kept []storage.PushAction
	for _, a := range actions {
		ev, err := h.rooms.Event(ctx, a.EventID)
		if errors.Is(err, rsapi.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		evs, kept = append(evs, ev), append(kept, a)
	}
	parsed, err := events.ParseAll(evs)
	if err != nil {
		return nil, err
	}
	f, err := events.NewFormatter(ctx, h.rooms, h.store, time.Now(), dev, parsed)
	if err != nil {
		return nil, err
	}
	formatted := f.FormatAll(parsed, nil)
	type readPos struct {
		unthreaded int64
		threads    map[string]int64
	}
	reads := map[string]readPos{}
	list := make([]notificationJSON, 0, len(kept))
	for i, a := range kept {
		rp, ok := reads[a.RoomID]
		if !ok {
			rp.unthreaded, rp.threads, err = h.receipts.ReceiptPositions(ctx, dev.UserID, a.RoomID)
			if err != nil {
				return nil, err
			}
			reads[a.RoomID] = rp
		}
		read := a.StreamPos <= rp.unthreaded || a.StreamPos <= rp.threads[a.ThreadID]
		list = append(list, notificationJSON{Actions: a.Actions, Event: formatted[i], Read: read, RoomID: a.RoomID, TS: a.TS})
	}
	out["notifications"] = list
	if len(actions) == limit {
		out["next_token"] = strconv.FormatInt(actions[len(actions)-1].StreamPos, 10)
	}
	return out, nil
}
