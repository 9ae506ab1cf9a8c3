package rooms

import (
	"context"
	"net/http"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Knock is POST /knock/{roomIdOrAlias}: asks to join a room (room
// versions 7 and later). The knock is the user's m.room.member event with
// membership knock and the reason given; the auth rules decide whether it
// may be sent: only to a room whose join rule is knock (or
// knock_restricted, from version 10), by a user who is not joined,
// invited or banned, else 403. The room's members answer it with an
// invite (or a kick, to refuse it); the user takes it back by leaving.
//
// via and server_name are ignored: only rooms this server knows can be
// knocked on until federation can carry a knock elsewhere.
func (h *Handlers) Knock(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID, err := h.roomIDOrAlias(ctx, httputil.PathParam(r, "roomIDOrAlias"))
	if err != nil {
		return nil, err
	}
	var req membershipRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if err := h.setMembership(ctx, roomID, dev.UserID, dev.UserID, membershipKnock, req.Reason); err != nil {
		return nil, err
	}
	return map[string]string{"room_id": roomID}, nil
}

// roomIDOrAlias resolves the {roomIdOrAlias} of /join and /knock: a room
// id as it is, an alias of this server through the directory (404 when
// unknown), anything else 400 M_INVALID_PARAM.
func (h *Handlers) roomIDOrAlias(ctx context.Context, target string) (string, error) {
	switch {
	case strings.HasPrefix(target, "#"):
		if h.dir == nil {
			return "", httputil.NotFound("unknown alias")
		}
		return h.dir.RoomIDOf(ctx, target)
	case strings.HasPrefix(target, "!"):
		return target, nil
	}
	return "", httputil.InvalidParam("%q is neither a room id nor a room alias", target)
}
