package syncv3

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// maxTimeout caps a long poll.
const maxTimeout = 5 * time.Minute

// request is one /sync call's parameters.
type request struct {
	dev        hsapi.Device
	filter     Filter
	since      *streams.Token
	fullState  bool
	stateAfter bool
	// unstableStateAfter: the client asked under MSC4222's unstable name
	// and reads the answer under it.
	unstableStateAfter bool
	timeout            time.Duration
	setPresence        string
}

// parseRequest reads /sync's query parameters.
func (h *Handlers) parseRequest(r *http.Request) (*request, error) {
	q := r.URL.Query()
	req := &request{dev: auth.DeviceFrom(r.Context()), setPresence: q.Get("set_presence")}
	var err error
	if req.filter, err = h.requestFilter(r, req.dev.UserID); err != nil {
		return nil, err
	}
	if s := q.Get("since"); s != "" {
		tok, err := streams.ParseToken(s)
		if err != nil {
			return nil, httputil.InvalidParam("%v", err)
		}
		req.since = &tok
	}
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return nil, httputil.InvalidParam("timeout must be a non-negative integer")
		}
		req.timeout = min(time.Duration(ms)*time.Millisecond, maxTimeout)
	}
	for name, dst := range map[string]*bool{"full_state": &req.fullState, "use_state_after": &req.stateAfter, "org.matrix.msc4222.use_state_after": &req.unstableStateAfter} {
		switch q.Get(name) {
		case "", "false":
		case "true":
			*dst = true
		default:
			return nil, httputil.InvalidParam("%s must be true or false", name)
		}
	}
	switch req.setPresence {
	case "", "online", "offline", "unavailable":
	default:
		return nil, httputil.InvalidParam("set_presence must be online, offline or unavailable")
	}
	return req, nil
}

// Sync serves GET /sync.
func (h *Handlers) Sync(r *http.Request) (any, error) {
	req, err := h.parseRequest(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if h.Presence {
		h.touchPresence(ctx, req.dev.UserID, req.setPresence)
	}
	deadline := time.NewTimer(req.timeout)
	defer deadline.Stop()
	for {
		wake := h.Notifier.Wait(req.dev.UserID)
		upTo := h.Notifier.Current()
		resp, err := h.build(ctx, req, upTo)
		if err != nil {
			return nil, err
		}
		if req.since == nil || req.fullState || req.timeout == 0 || !resp.empty() {
			return resp, nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			return resp, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// build makes the response for req with every stream read up to upTo.
func (h *Handlers) build(ctx context.Context, req *request, upTo streams.Token) (*response, error) {
	b := &builder{h: h, req: req, upTo: upTo, now: h.now(), toDeviceNext: upTo.ToDevice}
	if req.since != nil {
		b.since = *req.since
		// A typing position from before a restart is past nothing now.
		if b.since.Typing > upTo.Typing {
			b.since.Typing = 0
		}
	}
	resp := &response{
		Rooms:            roomsPart{Join: map[string]*joinedRoom{}, Invite: map[string]*invitedRoom{}, Leave: map[string]*leftRoom{}, Knock: map[string]*knockedRoom{}},
		Presence:         rawEvents{Events: []json.RawMessage{}},
		AccountData:      rawEvents{Events: []json.RawMessage{}},
		ToDevice:         rawEvents{Events: []json.RawMessage{}},
		OneTimeKeysCount: map[string]int{},
		FallbackKeyTypes: []string{},
	}
	if err := b.accountData(ctx, resp); err != nil {
		return nil, err
	}
	if err := b.rooms(ctx, resp); err != nil {
		return nil, err
	}
	if err := b.presence(ctx, resp); err != nil {
		return nil, err
	}
	if err := b.e2ee(ctx, resp); err != nil {
		return nil, err
	}
	resp.UnstableFallbackKeyTypes = resp.FallbackKeyTypes
	next := b.next()
	resp.NextBatch = next.String()
	return resp, nil
}

// builder builds one response.
type builder struct {
	h     *Handlers
	req   *request
	since streams.Token
	upTo  streams.Token
	now   time.Time
	// toDeviceNext is the to-device position the response reached (less
	// than upTo's when the device has more messages than one response
	// carries).
	toDeviceNext int64
	// roomsUpTo is the rooms position read up to: past upTo's when a
	// membership change newer than it was seen.
	roomsUpTo int64
	// ignored are the users the syncing user ignores.
	ignored map[string]bool
	// roomAccountData is the per-room account data to send, by room.
	roomAccountData map[string][]json.RawMessage
	// receiptRooms are the rooms with receipts since the last sync.
	receiptRooms map[string]bool
}

// next is the response's next_batch.
func (b *builder) next() streams.Token {
	n := b.upTo
	// A token from before a restart may be past what the feeder has given
	// out again so far: never move a client back (the events in between
	// come again with the same positions, and the client has them).
	n.Rooms = max(n.Rooms, b.roomsUpTo, b.since.Rooms)
	n.ToDevice = b.toDeviceNext
	return n
}

// written waits until the rooms stream is written up to the response's
// position, before a query of its tables (the notifier knows the stream
// before it is written).
func (b *builder) written(ctx context.Context) error {
	return b.h.Notifier.WaitPersisted(ctx, b.roomsUpTo)
}

// initial reports whether this is an initial sync (or full_state).
func (b *builder) initial() bool { return b.req.since == nil }
