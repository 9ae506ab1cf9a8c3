package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// hierarchyRoom is a room's entry in a federation /hierarchy answer: its
// public room entry and, for a space, its m.space.child events.
type hierarchyRoom struct {
	rsapi.PublicRoom
	ChildrenState []hierarchyChild `json:"children_state"`
}

// hierarchyChild is an m.space.child event as stripped state with its
// origin_server_ts.
type hierarchyChild struct {
	Type           string          `json:"type"`
	StateKey       string          `json:"state_key"`
	Content        json.RawMessage `json:"content"`
	Sender         string          `json:"sender"`
	OriginServerTS int64           `json:"origin_server_ts"`
}

// hierarchyResponse is the answer of federation /hierarchy.
type hierarchyResponse struct {
	Room                 hierarchyRoom   `json:"room"`
	Children             []hierarchyRoom `json:"children"`
	InaccessibleChildren []string        `json:"inaccessible_children"`
}

// Hierarchy answers GET /_matrix/federation/v1/hierarchy/{roomId}
// (?suggested_only=true): the summary of a room this server is in and
// that the asking server may see (a public, knockable or world-readable
// room, or one where that server has joined members; 404 M_NOT_FOUND
// otherwise), and those of its children (the suggested ones only, with
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
	resp := hierarchyResponse{Room: root, Children: []hierarchyRoom{}, InaccessibleChildren: []string{}}
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

// hierarchySummary describes roomID from its current state, and says
// whether server may see it; errNotInRoom when this server is not in it.
func (c *Component) hierarchySummary(ctx context.Context, roomID, server string, suggestedOnly bool) (hierarchyRoom, bool, error) {
	evs, err := c.rooms.CurrentState(ctx, roomID)
	if errors.Is(err, rsapi.ErrRoomNotFound) {
		return hierarchyRoom{}, false, errNotInRoom
	}
	if err != nil {
		return hierarchyRoom{}, false, fmt.Errorf("state of %s: %w", roomID, err)
	}
	rm := hierarchyRoom{PublicRoom: rsapi.PublicRoom{RoomID: roomID, JoinRule: spec.Invite}, ChildrenState: []hierarchyChild{}}
	var children []hierarchyChild
	hasCreate, serverJoined := false, false
	for _, ev := range evs {
		var e struct {
			Type           string          `json:"type"`
			StateKey       string          `json:"state_key"`
			Sender         string          `json:"sender"`
			OriginServerTS int64           `json:"origin_server_ts"`
			Content        json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(ev.JSON, &e); err != nil {
			return hierarchyRoom{}, false, fmt.Errorf("parse state of %s: %w", roomID, err)
		}
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(e.Content, &fields)
		str := func(key string) string {
			var s string
			_ = json.Unmarshal(fields[key], &s)
			return s
		}
		switch {
		case e.Type == spec.MRoomMember:
			if str("membership") == spec.Join {
				rm.NumJoinedMembers++
				serverJoined = serverJoined || serverOf(e.StateKey) == server
			}
		case e.Type == "m.space.child":
			if spaceChildCounts(e.StateKey, fields, suggestedOnly) {
				children = append(children, hierarchyChild{Type: e.Type, StateKey: e.StateKey, Content: e.Content, Sender: e.Sender, OriginServerTS: e.OriginServerTS})
			}
		case e.StateKey != "":
		case e.Type == spec.MRoomCreate:
			hasCreate = true
			rm.RoomType = str("type")
		case e.Type == spec.MRoomName:
			rm.Name = str("name")
		case e.Type == spec.MRoomTopic:
			rm.Topic = str("topic")
		case e.Type == spec.MRoomCanonicalAlias:
			rm.CanonicalAlias = str("alias")
		case e.Type == "m.room.avatar":
			rm.AvatarURL = str("url")
		case e.Type == spec.MRoomJoinRules:
			if jr := str("join_rule"); jr != "" {
				rm.JoinRule = jr
			}
		case e.Type == spec.MRoomHistoryVisibility:
			rm.WorldReadable = str("history_visibility") == "world_readable"
		case e.Type == "m.room.guest_access":
			rm.GuestCanJoin = str("guest_access") == "can_join"
		}
	}
	if !hasCreate {
		return hierarchyRoom{}, false, errNotInRoom
	}
	if rm.RoomType == "m.space" {
		rm.ChildrenState = children
	}
	switch rm.JoinRule {
	case spec.Public, spec.Knock, "knock_restricted":
		return rm, true, nil
	}
	return rm, rm.WorldReadable || serverJoined, nil
}

// spaceChildCounts reports whether an m.space.child event counts: a room
// id as state key, a non-empty via list, and suggested when only
// suggested children are wanted (the rules of the client /hierarchy).
func spaceChildCounts(stateKey string, content map[string]json.RawMessage, suggestedOnly bool) bool {
	var via []string
	if !strings.HasPrefix(stateKey, "!") || json.Unmarshal(content["via"], &via) != nil || len(via) == 0 {
		return false
	}
	if suggestedOnly {
		var suggested bool
		if json.Unmarshal(content["suggested"], &suggested) != nil || !suggested {
			return false
		}
	}
	return true
}

// RemoteHierarchy implements fedapi.RemoteSpaces.
func (c *Component) RemoteHierarchy(ctx context.Context, roomID string, servers []string, suggestedOnly bool) (fedapi.Hierarchy, error) {
	lastErr := fedapi.ErrNoServer
	path := "/_matrix/federation/v1/hierarchy/" + url.PathEscape(roomID)
	if suggestedOnly {
		path += "?suggested_only=true"
	}
	for _, server := range servers {
		if server == string(c.serverName) || !c.cfg.ServerAllowed(server) {
			continue
		}
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
