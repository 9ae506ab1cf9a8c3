// Package ephemeral serves what clients say about themselves rather than
// put in rooms: typing notifications, read receipts, read markers and
// presence. Typing lives in memory (streams.Typing); receipts and presence
// in the homeserver's tables. Each change wakes the /sync requests it
// concerns.
package ephemeral

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/sirupsen/logrus"
	"net/http"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Rooms is what the handlers read of the roomserver.
type Rooms interface {
	Membership(ctx context.Context, roomID, userID string) (string, int64, error)
	Event(ctx context.Context, eventID string) (rsapi.Event, error)
}

// AccountData writes account data (m.fully_read).
type AccountData interface {
	Put(ctx context.Context, userID, roomID, typ string, content json.RawMessage) error
}

// Deps is what the handlers need.
type Deps struct {
	Store       *storage.Store
	Rooms       Rooms
	Notifier    *streams.Notifier
	Typing      *streams.Typing
	AccountData AccountData
	// Unread, when set, hears of every read receipt written (it caches
	// unread counts counted from them).
	Unread ReadReceipts
	// Presence turns presence on.
	Presence bool
	// IdleAfter turns online into unavailable without activity.
	IdleAfter       time.Duration
	MaxRequestBytes int64
	// Bridges, when set, is told of every typing change, receipt and
	// presence, for the application services that receive ephemeral
	// events (MSC2409).
	Bridges EDUSink
	// Federation, when set, tells other servers of local users' typing
	// and public read receipts; Log then says when it fails.
	Federation hsapi.EDUSender
	Log        *logrus.Entry
}

// EDUSink hands ephemeral events on to the application services.
type EDUSink interface {
	Typing(ctx context.Context, roomID string, userIDs []string)
	Receipt(ctx context.Context, roomID, userID, typ, threadID, eventID string, ts int64)
	Presence(ctx context.Context, userID, presence, statusMsg string)
}

// ReadReceipts hears that a user's read receipt in a room moved.
type ReadReceipts interface {
	ReceiptMoved(userID, roomID string)
}

// Handlers serves the endpoints.
type Handlers struct {
	Deps
	now func() time.Time
}

// New returns the handlers.
func New(d Deps) *Handlers { return &Handlers{Deps: d, now: time.Now} }

// joined refuses a user who is not joined to roomID.
func (h *Handlers) joined(ctx context.Context, roomID, userID string) error {
	m, _, err := h.Rooms.Membership(ctx, roomID, userID)
	if err != nil && !errors.Is(err, rsapi.ErrRoomNotFound) {
		return fmt.Errorf("read membership: %w", err)
	}
	if m != "join" {
		return httputil.Forbidden("you are not in this room")
	}
	return nil
}

// SetTyping serves PUT /rooms/{roomID}/typing/{userID}.
func (h *Handlers) SetTyping(r *http.Request) (any, error) {
	userID := auth.DeviceFrom(r.Context()).UserID
	if httputil.PathParam(r, "userID") != userID {
		return nil, httputil.Forbidden("cannot set the typing state of another user")
	}
	var body struct {
		Typing  *bool  `json:"typing"`
		Timeout *int64 `json:"timeout"`
	}
	if err := httputil.DecodeJSON(r, h.MaxRequestBytes, &body); err != nil {
		return nil, err
	}
	if body.Typing == nil {
		return nil, httputil.BadJSON("typing is required")
	}
	if *body.Typing && (body.Timeout == nil || *body.Timeout < 0) {
		return nil, httputil.BadJSON("timeout is required when typing")
	}
	roomID := httputil.PathParam(r, "roomID")
	if err := h.joined(r.Context(), roomID, userID); err != nil {
		return nil, err
	}
	var timeout time.Duration
	if body.Timeout != nil {
		timeout = time.Duration(*body.Timeout) * time.Millisecond
	}
	h.Typing.Set(roomID, userID, *body.Typing, timeout)
	if h.Bridges != nil {
		h.Bridges.Typing(r.Context(), roomID, h.Typing.Typing(roomID))
	}
	if h.Federation != nil {
		if err := h.Federation.SendTyping(r.Context(), roomID, userID, *body.Typing, timeout.Milliseconds()); err != nil {
			h.Log.WithError(err).Warn("queue typing for other servers")
		}
	}
	return struct{}{}, nil
}
