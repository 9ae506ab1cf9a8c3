package ephemeral

import (
	"errors"
	"net/http"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// maxStatusMsg bounds status_msg, as Synapse does.
const maxStatusMsg = 1024

// SetPresence serves PUT /presence/{userID}/status.
func (h *Handlers) SetPresence(r *http.Request) (any, error) {
	userID := auth.DeviceFrom(r.Context()).UserID
	if httputil.PathParam(r, "userID") != userID {
		return nil, httputil.Forbidden("cannot set the presence of another user")
	}
	var body struct {
		Presence  string  `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := httputil.DecodeJSON(r, h.MaxRequestBytes, &body); err != nil {
		return nil, err
	}
	switch body.Presence {
	case "online", "offline", "unavailable":
	default:
		return nil, httputil.InvalidParam("presence must be online, offline or unavailable")
	}
	if body.StatusMsg != nil && len(*body.StatusMsg) > maxStatusMsg {
		return nil, httputil.InvalidParam("status_msg is too long")
	}
	if !h.Presence {
		return struct{}{}, nil
	}
	p, err := h.Store.GetPresence(r.Context(), userID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	p.UserID, p.State, p.LastActiveTS = userID, body.Presence, h.now().UnixMilli()
	if body.StatusMsg != nil {
		p.StatusMsg = *body.StatusMsg
	}
	pos, err := h.Store.PutPresence(r.Context(), p)
	if err != nil {
		return nil, err
	}
	h.Notifier.OnPresence(userID, pos)
	if h.Bridges != nil {
		h.Bridges.Presence(r.Context(), userID, p.State, p.StatusMsg)
	}
	if h.Federation != nil {
		if err := h.Federation.SendPresence(r.Context(), hsapi.Presence{UserID: userID, State: p.State, StatusMsg: p.StatusMsg,
			CurrentlyActive: p.State == "online"}); err != nil {
			h.Log.WithError(err).Warn("queue presence for other servers")
		}
	}
	return struct{}{}, nil
}

// GetPresence serves GET /presence/{userID}/status: the user's own, or
// that of a user sharing a room with them.
func (h *Handlers) GetPresence(r *http.Request) (any, error) {
	me := auth.DeviceFrom(r.Context()).UserID
	target := httputil.PathParam(r, "userID")
	if target != me {
		shares, err := h.Notifier.SharesRoomWith(r.Context(), h.Store, me, target)
		if err != nil {
			return nil, err
		}
		if !shares {
			return nil, httputil.Forbidden("you do not share a room with this user")
		}
	}
	if !h.Presence {
		return streams.PresenceContent{Presence: "offline"}, nil
	}
	p, err := h.Store.GetPresence(r.Context(), target)
	if errors.Is(err, storage.ErrNotFound) {
		return streams.PresenceContent{Presence: "offline"}, nil
	}
	if err != nil {
		return nil, err
	}
	return streams.PresenceOf(p, h.now(), h.IdleAfter), nil
}
