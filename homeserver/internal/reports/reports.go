// Package reports serves content reporting: POST /rooms/{roomId}/report/
// {eventId} (an event) and POST /rooms/{roomId}/report (a whole room, spec
// v1.13). Reports are stored for the server's admins (homeserver/storage,
// content_reports); nothing is sent anywhere yet.
//
// It sits in the homeserver component above roomserver/api (it reads
// memberships through api.Reader) and beside homeserver/internal/rooms,
// which decides whether the reporter may see the event (EventViewer).
package reports

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Roomserver is what reporting reads of rooms.
type Roomserver interface {
	RoomVersion(ctx context.Context, roomID string) (string, error)
	Membership(ctx context.Context, roomID, userID string) (membership string, pos int64, err error)
}

// EventViewer says whether a user may see an event (homeserver/internal/
// rooms implements it with the room's history visibility).
type EventViewer interface {
	// SeesEvent reports whether userID may see eventID of roomID; false
	// for an unknown event or one of another room.
	SeesEvent(ctx context.Context, roomID, userID, eventID string) (bool, error)
}

// Deps is what the report handlers need.
type Deps struct {
	Config *config.Client
	Store  *storage.Store
	Rooms  Roomserver
	Events EventViewer
}

// Handlers serves the report endpoints.
type Handlers struct {
	cfg    *config.Client
	store  *storage.Store
	rooms  Roomserver
	events EventViewer
}

// New returns the report handlers.
func New(d Deps) *Handlers {
	return &Handlers{cfg: d.Config, store: d.Store, rooms: d.Rooms, events: d.Events}
}

// The range of an event report's score: -100 is most offensive.
const (
	minScore = -100
	maxScore = 0
)

// ReportEvent is POST /rooms/{roomId}/report/{eventId} {reason, score}.
// The reporter must be joined to the room (the spec's MUST) and able to
// see the event; otherwise, and for an unknown event, the answer is 404,
// the same for all so that nothing leaks. A score outside -100..0 is 400
// M_INVALID_PARAM, as Synapse has it.
func (h *Handlers) ReportEvent(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID, eventID := httputil.PathParam(r, "roomID"), httputil.PathParam(r, "eventID")
	var req struct {
		Reason *string `json:"reason"`
		Score  *int64  `json:"score"`
	}
	if err := httputil.DecodeJSON(r, h.cfg.MaxRequestBytes, &req); err != nil {
		return nil, err
	}
	if req.Score != nil && (*req.Score < minScore || *req.Score > maxScore) {
		return nil, httputil.InvalidParam("score must be an integer from %d to %d", minScore, maxScore)
	}
	notFound := httputil.NotFound("the event was not found or you are not joined to its room")
	m, _, err := h.rooms.Membership(ctx, roomID, dev.UserID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("read membership: %w", err)
	}
	if m != "join" {
		return nil, notFound
	}
	ok, err := h.events.SeesEvent(ctx, roomID, dev.UserID, eventID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound
	}
	_, err = h.store.AddContentReport(ctx, storage.ContentReport{UserID: dev.UserID, RoomID: roomID, EventID: eventID, Reason: req.Reason, Score: req.Score})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// ReportRoom is POST /rooms/{roomId}/report {reason}: any user may report
// a room this server knows, joined or not (the spec forbids asking for a
// membership: harm reaches people through directories and invites); an
// unknown room is 404.
func (h *Handlers) ReportRoom(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID := httputil.PathParam(r, "roomID")
	var req struct {
		Reason *string `json:"reason"`
	}
	if err := httputil.DecodeJSON(r, h.cfg.MaxRequestBytes, &req); err != nil {
		return nil, err
	}
	if _, err := h.rooms.RoomVersion(ctx, roomID); errors.Is(err, api.ErrRoomNotFound) {
		return nil, httputil.NotFound("room not found")
	} else if err != nil {
		return nil, fmt.Errorf("read room version: %w", err)
	}
	if _, err := h.store.AddContentReport(ctx, storage.ContentReport{UserID: dev.UserID, RoomID: roomID, Reason: req.Reason}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
