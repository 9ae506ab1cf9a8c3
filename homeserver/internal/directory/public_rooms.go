package directory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Visibility values of /directory/list/room.
const (
	visibilityPublic  = "public"
	visibilityPrivate = "private"
)

// publicRoomsResponse is the body of GET and POST /publicRooms.
type publicRoomsResponse struct {
	Chunk     []api.PublicRoom `json:"chunk"`
	NextBatch string           `json:"next_batch,omitempty"`
	PrevBatch string           `json:"prev_batch,omitempty"`
	Total     int              `json:"total_room_count_estimate"`
}

// PublicRooms is GET /publicRooms, open to anyone: a page of the rooms
// published in this server's directory (limit, since), most joined
// members first.
func (h *Handlers) PublicRooms(r *http.Request) (any, error) {
	qs := r.URL.Query()
	q := api.PublicRoomsQuery{Since: qs.Get("since")}
	if s := qs.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, httputil.InvalidParam("limit must be a non-negative integer")
		}
		q.Limit = n
	}
	return h.publicRooms(r, q)
}

// PublicRoomsFiltered is POST /publicRooms: PublicRooms with a filter on
// name, topic and canonical alias (generic_search_term, case-insensitive)
// and on room types (null standing for rooms without a type).
func (h *Handlers) PublicRoomsFiltered(r *http.Request) (any, error) {
	var req struct {
		Limit  int    `json:"limit"`
		Since  string `json:"since"`
		Filter struct {
			GenericSearchTerm string    `json:"generic_search_term"`
			RoomTypes         []*string `json:"room_types"`
		} `json:"filter"`
		// include_all_networks and third_party_instance_id name the
		// appservices' networks: there are none yet, so only this
		// server's own list is ever served.
	}
	if err := httputil.DecodeJSON(r, h.cfg.MaxRequestBytes, &req); err != nil {
		return nil, err
	}
	if req.Limit < 0 {
		return nil, httputil.InvalidParam("limit must be a non-negative integer")
	}
	q := api.PublicRoomsQuery{SearchTerm: req.Filter.GenericSearchTerm, Since: req.Since, Limit: req.Limit}
	for _, t := range req.Filter.RoomTypes {
		if t == nil {
			q.RoomTypes = append(q.RoomTypes, "")
		} else {
			q.RoomTypes = append(q.RoomTypes, *t)
		}
	}
	return h.publicRooms(r, q)
}

// publicRooms serves a /publicRooms query: for this server, or for the
// server of ?server=, asked over federation.
func (h *Handlers) publicRooms(r *http.Request, q api.PublicRoomsQuery) (any, error) {
	if s := r.URL.Query().Get("server"); s != "" && s != string(h.serverName) {
		return h.remotePublicRooms(r.Context(), s, q)
	}
	page, err := h.rooms.PublicRooms(r.Context(), q)
	if errors.Is(err, api.ErrBadPageToken) {
		return nil, httputil.InvalidParam("since is not a token this server gave")
	}
	if err != nil {
		return nil, fmt.Errorf("list public rooms: %w", err)
	}
	if page.Chunk == nil {
		page.Chunk = []api.PublicRoom{}
	}
	return publicRoomsResponse{Chunk: page.Chunk, NextBatch: page.NextBatch, PrevBatch: page.PrevBatch, Total: page.Total}, nil
}

// remotePublicRooms asks server for a page of its public room list,
// served as it gave it: 403 when this server does not federate with it
// (or it refuses), 404 when it has no list, 502 when it does not answer.
func (h *Handlers) remotePublicRooms(ctx context.Context, server string, q api.PublicRoomsQuery) (any, error) {
	if h.remote == nil {
		return nil, httputil.NotFound("cannot list the rooms of server %s", server)
	}
	page, err := h.remote.QueryPublicRooms(ctx, server, fedapi.PublicRoomsQuery{Limit: q.Limit, Since: q.Since, SearchTerm: q.SearchTerm, RoomTypes: q.RoomTypes})
	switch {
	case errors.Is(err, fedapi.ErrNoServer):
		return nil, httputil.Forbidden("this server does not federate with %s", server)
	case errors.Is(err, fedapi.ErrRefused):
		return nil, httputil.Forbidden("%v", err)
	case errors.Is(err, fedapi.ErrNotFound):
		return nil, httputil.NotFound("%s has no public room list", server)
	case err != nil:
		h.log.WithError(err).Info("list another server's public rooms")
		return nil, httputil.Errorf(httputil.CodeUnknown, "%s did not answer", server).WithStatus(http.StatusBadGateway)
	}
	return page, nil
}

// GetVisibility is GET /directory/list/room/{roomId}, open to anyone:
// whether the room is published in the directory.
func (h *Handlers) GetVisibility(r *http.Request) (any, error) {
	roomID := httputil.PathParam(r, "roomID")
	public, err := h.rooms.Visibility(r.Context(), roomID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return nil, httputil.NotFound("unknown room %s", roomID)
	}
	if err != nil {
		return nil, fmt.Errorf("read room visibility: %w", err)
	}
	v := visibilityPrivate
	if public {
		v = visibilityPublic
	}
	return map[string]string{"visibility": v}, nil
}

// SetVisibility is PUT /directory/list/room/{roomId}: publishes a room in
// the directory ("public", the default) or withdraws it ("private"). Like
// Synapse, it takes the power to send m.room.canonical_alias in the room,
// or a server admin.
func (h *Handlers) SetVisibility(r *http.Request) (any, error) {
	ctx, dev := r.Context(), auth.DeviceFrom(r.Context())
	roomID := httputil.PathParam(r, "roomID")
	var req struct {
		Visibility *string `json:"visibility"`
	}
	if err := httputil.DecodeJSON(r, h.cfg.MaxRequestBytes, &req); err != nil {
		return nil, err
	}
	public := true
	if req.Visibility != nil {
		switch *req.Visibility {
		case visibilityPublic:
		case visibilityPrivate:
			public = false
		default:
			return nil, httputil.InvalidParam("visibility must be %q or %q", visibilityPublic, visibilityPrivate)
		}
	}
	if !dev.IsAdmin {
		ok, err := h.canSendCanonicalAlias(ctx, roomID, dev.UserID)
		if errors.Is(err, api.ErrRoomNotFound) {
			return nil, httputil.NotFound("unknown room %s", roomID)
		}
		if err != nil {
			return nil, fmt.Errorf("check power: %w", err)
		}
		if !ok {
			return nil, httputil.Forbidden("you may not change this room's visibility in the directory")
		}
	}
	if err := h.rooms.SetVisibility(ctx, roomID, public); errors.Is(err, api.ErrRoomNotFound) {
		return nil, httputil.NotFound("unknown room %s", roomID)
	} else if err != nil {
		return nil, fmt.Errorf("set room visibility: %w", err)
	}
	return struct{}{}, nil
}

// SetAppServiceVisibility is PUT
// /directory/list/appservice/{networkID}/{roomID}: an application service
// publishes a room it bridges (or withdraws it). The public list is not
// split by network: the room is listed like any other.
func (h *Handlers) SetAppServiceVisibility(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	if dev.AppServiceID == "" {
		return nil, httputil.Forbidden("only application services may publish rooms per network")
	}
	roomID := httputil.PathParam(r, "roomID")
	var req struct {
		Visibility string `json:"visibility"`
	}
	if err := httputil.DecodeJSON(r, h.cfg.MaxRequestBytes, &req); err != nil {
		return nil, err
	}
	if req.Visibility != visibilityPublic && req.Visibility != visibilityPrivate {
		return nil, httputil.InvalidParam("visibility must be %q or %q", visibilityPublic, visibilityPrivate)
	}
	if err := h.rooms.SetVisibility(r.Context(), roomID, req.Visibility == visibilityPublic); errors.Is(err, api.ErrRoomNotFound) {
		return nil, httputil.NotFound("unknown room %s", roomID)
	} else if err != nil {
		return nil, fmt.Errorf("set room visibility: %w", err)
	}
	return struct{}{}, nil
}
