package spaces

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/spacetree"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// SummaryReader is what a room summary reads beyond the current state.
type SummaryReader interface {
	RoomVersion(ctx context.Context, roomID string) (string, error)
	Membership(ctx context.Context, roomID, userID string) (string, int64, error)
}

// Aliases resolves a room alias, with the servers to reach the room
// through (homeserver/internal/directory).
type Aliases interface {
	ResolveRoomAlias(ctx context.Context, alias string) (roomID string, servers []string, err error)
}

// roomSummary is the body of GET /room_summary (spec v1.15): the room's
// public entry, and what a client shows before joining.
type roomSummary struct {
	spacetree.Entry
	RoomVersion    string   `json:"room_version,omitempty"`
	Encryption     string   `json:"encryption,omitempty"`
	AllowedRoomIDs []string `json:"allowed_room_ids,omitempty"`
	// Membership is the caller's membership, when they have one.
	Membership string `json:"membership,omitempty"`
}

// RoomSummary is GET /_matrix/client/v1/room_summary/{roomIdOrAlias}: the
// summary of a room the user may preview (the rules of /hierarchy:
// joined, invited, a public or knockable room, a restricted room whose
// allowed rooms the user is in, world-readable history), 404 M_NOT_FOUND
// otherwise. A room this server is not in is described by the first of
// the servers of ?via=, of its alias and of its id that answers
// (federation /hierarchy), as Synapse does.
func (h *Handlers) RoomSummary(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID := httputil.PathParam(r, "roomIDOrAlias")
	notFound := httputil.NotFound("room not found")
	via := r.URL.Query()["via"]
	if strings.HasPrefix(roomID, "#") {
		if h.aliases == nil {
			return nil, notFound
		}
		id, servers, err := h.aliases.ResolveRoomAlias(ctx, roomID)
		if err != nil {
			return nil, err // 400 for a bad alias, 404 for an unknown one
		}
		roomID, via = id, append(via, servers...)
	}
	if !strings.HasPrefix(roomID, "!") {
		return nil, httputil.InvalidParam("not a room id or alias")
	}
	if _, domain, ok := strings.Cut(roomID, ":"); ok {
		via = append(via, domain)
	}
	if _, err := h.rooms.CurrentState(ctx, roomID); errors.Is(err, api.ErrRoomNotFound) {
		return h.remoteRoomSummary(ctx, roomID, dev.UserID, via)
	}
	ok, err := h.preview.MayPreview(ctx, roomID, dev.UserID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound
	}
	rm, err := h.summary(ctx, roomID, false)
	if errors.Is(err, api.ErrRoomNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	out := roomSummary{Entry: rm.Entry}
	if out.RoomVersion, err = h.reader.RoomVersion(ctx, roomID); err != nil {
		return nil, fmt.Errorf("read room version: %w", err)
	}
	if out.Membership, _, err = h.reader.Membership(ctx, roomID, dev.UserID); err != nil {
		return nil, fmt.Errorf("read membership: %w", err)
	}
	evs, err := h.rooms.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		var e struct {
			Type     string `json:"type"`
			StateKey string `json:"state_key"`
			Content  struct {
				Algorithm string `json:"algorithm"`
				Allow     []struct {
					Type   string `json:"type"`
					RoomID string `json:"room_id"`
				} `json:"allow"`
			} `json:"content"`
		}
		if json.Unmarshal(ev.JSON, &e) != nil || e.StateKey != "" {
			continue
		}
		switch e.Type {
		case "m.room.encryption":
			out.Encryption = e.Content.Algorithm
		case typeJoinRules:
			if out.JoinRule == "restricted" || out.JoinRule == "knock_restricted" {
				for _, a := range e.Content.Allow {
					if a.Type == "m.room_membership" && a.RoomID != "" {
						out.AllowedRoomIDs = append(out.AllowedRoomIDs, a.RoomID)
					}
				}
			}
		}
	}
	return out, nil
}

// remoteRoomSummary is the summary of a room this server is not in, as
// one of via describes it (remoteSummary), with the user's membership
// when this server knows it (an invite, a knock).
func (h *Handlers) remoteRoomSummary(ctx context.Context, roomID, userID string, via []string) (any, error) {
	rm, ok, err := h.remoteSummary(ctx, roomID, userID, via, false, map[string]spacetree.Room{})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, httputil.NotFound("room not found")
	}
	out := roomSummary{Entry: rm.Entry, RoomVersion: rm.RoomVersion, Encryption: rm.Encryption, AllowedRoomIDs: rm.AllowedRoomIDs}
	m, _, err := h.reader.Membership(ctx, roomID, userID)
	if err != nil && !errors.Is(err, api.ErrRoomNotFound) && !errors.Is(err, api.ErrNotFound) {
		return nil, fmt.Errorf("read membership: %w", err)
	}
	out.Membership = m
	return out, nil
}
