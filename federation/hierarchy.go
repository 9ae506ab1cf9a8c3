package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/spacetree"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// hierarchyResponse is the answer of federation /hierarchy.
type hierarchyResponse struct {
	Room                 spacetree.Room   `json:"room"`
	Children             []spacetree.Room `json:"children"`
	InaccessibleChildren []string         `json:"inaccessible_children"`
}

// Hierarchy answers GET /_matrix/federation/v1/hierarchy/{roomId}
// (?suggested_only=true): the summary of a room this server is in and
// that the asking server may see (a public, knockable or world-readable
// room, one where that server has joined members, or a restricted room
// whose allowed rooms have some; 404 M_NOT_FOUND otherwise), and those of its children (the suggested ones only, with
// suggested_only) this server is in: the children the asking server may
// not see are listed by id in inaccessible_children, those this server is
// not in are left out. The asking server walks further down itself.
func (c *Component) Hierarchy(r *http.Request) (any, error) {
	ctx, roomID, origin := r.Context(), httputil.PathParam(r, "roomID"), string(originOf(r))
	var suggestedOnly bool
	switch r.URL.Query().Get("suggested_only") {
	case "", "false":
	case "true":
		suggestedOnly = true
	default:
		return nil, httputil.InvalidParam("suggested_only must be true or false")
	}
	root, ok, err := c.hierarchySummary(ctx, roomID, origin, suggestedOnly)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, httputil.NotFound("unknown room, or not one the server may see")
	}
	resp := hierarchyResponse{Room: root, Children: []spacetree.Room{}, InaccessibleChildren: []string{}}
	for _, child := range root.ChildrenState {
		sum, ok, err := c.hierarchySummary(ctx, child.StateKey, origin, suggestedOnly)
		switch {
		case errors.Is(err, errNotInRoom):
		case err != nil:
			return nil, err
		case ok:
			resp.Children = append(resp.Children, sum)
		default:
			resp.InaccessibleChildren = append(resp.InaccessibleChildren, child.StateKey)
		}
	}
	return resp, nil
}

// errNotInRoom: this server is not in the room (it does not know it, or
// only from an invite or a knock).
var errNotInRoom = errors.New("not in the room")

// hierarchySummary describes roomID from its current state
// (spacetree.Describe, as the client API's /hierarchy does), and says
// whether server may see it; errNotInRoom when this server is not in it.
func (c *Component) hierarchySummary(ctx context.Context, roomID, server string, suggestedOnly bool) (spacetree.Room, bool, error) {
	evs, err := c.rooms.CurrentState(ctx, roomID)
	if errors.Is(err, rsapi.ErrRoomNotFound) {
		return spacetree.Room{}, false, errNotInRoom
	}
	if err != nil {
		return spacetree.Room{}, false, fmt.Errorf("state of %s: %w", roomID, err)
	}
	state := make([]json.RawMessage, len(evs))
	hasCreate, serverJoined := false, false
	for i, ev := range evs {
		state[i] = ev.JSON
		var e struct {
			Type     string `json:"type"`
			StateKey string `json:"state_key"`
			Content  struct {
				Membership string `json:"membership"`
			} `json:"content"`
		}
		if json.Unmarshal(ev.JSON, &e) != nil {
			continue
		}
		switch e.Type {
		case spec.MRoomCreate:
			hasCreate = true
		case spec.MRoomMember:
			serverJoined = serverJoined || e.Content.Membership == spec.Join && serverOf(e.StateKey) == server
		}
	}
	if !hasCreate {
		return spacetree.Room{}, false, errNotInRoom
	}
	rm, err := spacetree.Describe(roomID, state, suggestedOnly)
	if err != nil {
		return spacetree.Room{}, false, err
	}
	switch {
	case rm.JoinRule == spec.Public, rm.JoinRule == spec.Knock, rm.JoinRule == "knock_restricted":
		return rm, true, nil
	case rm.WorldReadable || serverJoined:
		return rm, true, nil
	case spacetree.Restricted(rm.JoinRule):
		// The asking server has users who may join: members of an
		// allowed room. Which of them may is for it to tell, by
		// allowed_room_ids.
		for _, allowed := range rm.AllowedRoomIDs {
			servers, err := c.rooms.JoinedServers(ctx, allowed)
			if errors.Is(err, rsapi.ErrRoomNotFound) {
				continue
			}
			if err != nil {
				return spacetree.Room{}, false, err
			}
			if slices.Contains(servers, server) {
				return rm, true, nil
			}
		}
	}
	return rm, false, nil
}

// RemoteHierarchy implements fedapi.RemoteSpaces.
func (c *Component) RemoteHierarchy(ctx context.Context, roomID string, servers []string, suggestedOnly bool) (fedapi.Hierarchy, error) {
	lastErr := fedapi.ErrNoServer
	path := "/_matrix/federation/v1/hierarchy/" + url.PathEscape(roomID)
	if suggestedOnly {
		path += "?suggested_only=true"
	}
	for _, server := range c.askable(servers) {
		var h fedapi.Hierarchy
		if err := c.request(ctx, "GET", server, path, nil, &h); err != nil {
			c.log.WithError(err).WithFields(map[string]any{fieldRoomID: roomID, fieldServer: server}).Debug("remote hierarchy failed")
			lastErr = refusal(spec.ServerName(server), err)
			continue
		}
		if len(h.Room) == 0 {
			lastErr = fmt.Errorf("%w: %s: no room in the hierarchy answer", fedapi.ErrRefused, server)
			continue
		}
		return h, nil
	}
	return fedapi.Hierarchy{}, lastErr
}

var _ fedapi.RemoteSpaces = (*Component)(nil)
