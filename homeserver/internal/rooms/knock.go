package rooms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Knock is POST /knock/{roomIdOrAlias}: asks to join a room (room
// versions 7 and later). The knock is the user's m.room.member event with
// membership knock and the reason given; the auth rules decide whether it
// may be sent: only to a room whose join rule is knock (or
// knock_restricted, from version 10), by a user who is not joined,
// invited or banned, else 403. The room's members answer it with an
// invite (or a kick, to refuse it); the user takes it back by leaving.
//
// A room this server is not in is knocked on over federation, through
// the servers of ?via= (or the older ?server_name=) and the room id's
// own server, if it names one; the knock then shows in the user's /sync
// with the stripped state the room's server gave. The federation policy
// refuses a knock on a room this server is in when its joined members
// include a server off the allow-list (a room it is not in shows no
// members; the join that follows is checked).
func (h *Handlers) Knock(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID, aliasServers, err := h.roomIDOrAlias(ctx, httputil.PathParam(r, "roomIDOrAlias"))
	if err != nil {
		return nil, err
	}
	var req membershipRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if knocked, err := h.knockRemote(r, roomID, dev.UserID, req.Reason, aliasServers); knocked || err != nil {
		if err != nil {
			return nil, err
		}
		return map[string]string{"room_id": roomID}, nil
	}
	if err := h.checkRoomServers(ctx, roomID); err != nil {
		return nil, err
	}
	if err := h.setMembership(ctx, roomID, dev.UserID, dev.UserID, membershipKnock, req.Reason); err != nil {
		return nil, err
	}
	return map[string]string{"room_id": roomID}, nil
}

// knockRemote knocks on roomID over federation when this server is not
// in the room and can federate, through the request's servers and then
// more (those of the alias it was named by); knocked is false when the
// knock is a local one.
func (h *Handlers) knockRemote(r *http.Request, roomID, userID, reason string, more []string) (knocked bool, err error) {
	if h.remote == nil {
		return false, nil
	}
	ctx := r.Context()
	if in, err := h.inRoom(ctx, roomID); in || err != nil {
		return false, err
	}
	servers := append(viaServers(r, roomID), more...)
	if len(servers) == 0 {
		return false, httputil.NotFound("unknown room, and no server to knock through")
	}
	err = h.remote.KnockRemote(ctx, roomID, userID, servers, reasonContent(reason))
	switch {
	case errors.Is(err, fedapi.ErrNoServer):
		return false, httputil.NotFound("no server this one federates with can take the knock")
	case errors.Is(err, fedapi.ErrRefused):
		return false, httputil.Forbidden("%v", err)
	case err != nil:
		return false, fmt.Errorf("knock over federation: %w", err)
	}
	return true, nil
}

// inRoom reports whether this server is in roomID: it has the room's
// create event (a room known only from an invite or a knock is not).
func (h *Handlers) inRoom(ctx context.Context, roomID string) (bool, error) {
	_, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeCreate})
	if errors.Is(err, api.ErrRoomNotFound) || errors.Is(err, api.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// viaServers are the servers a room this server is not in is reached
// through: ?via=, the older ?server_name=, and the room id's own server
// when it names one (room versions before 12).
func viaServers(r *http.Request, roomID string) []string {
	q := r.URL.Query()
	servers := append(q["via"], q["server_name"]...)
	if _, domain, ok := strings.Cut(roomID, ":"); ok {
		servers = append(servers, domain)
	}
	return servers
}

// checkRoomServers refuses (403) to let a local user into a room shared
// with a server off the federation allow-list.
func (h *Handlers) checkRoomServers(ctx context.Context, roomID string) error {
	if h.remote == nil {
		return nil
	}
	err := h.remote.CheckRoomServers(ctx, roomID)
	switch {
	case errors.Is(err, fedapi.ErrServerNotAllowed):
		return httputil.Forbidden("%v", err)
	case errors.Is(err, api.ErrRoomNotFound):
		return httputil.NotFound("room not found")
	}
	return err
}

// roomIDOrAlias resolves the {roomIdOrAlias} of /join and /knock: a room
// id as it is, an alias through the directory (404 when unknown) with
// the servers to reach the room through, anything else 400
// M_INVALID_PARAM.
func (h *Handlers) roomIDOrAlias(ctx context.Context, target string) (roomID string, servers []string, err error) {
	switch {
	case strings.HasPrefix(target, "#"):
		if h.dir == nil {
			return "", nil, httputil.NotFound("unknown alias")
		}
		return h.dir.ResolveRoomAlias(ctx, target)
	case strings.HasPrefix(target, "!"):
		return target, nil, nil
	}
	return "", nil, httputil.InvalidParam("%q is neither a room id nor a room alias", target)
}
