// Package spaces serves the space hierarchy: GET /rooms/{roomId}/hierarchy
// (client API v1) walks a space's m.space.child events and describes each
// room found with its public room directory entry.
//
// It sits in the homeserver component above roomserver/api (it reads room
// state through api.Reader) and beside homeserver/internal/rooms, which
// decides who may see a room's summary (MayPreview): the rules live with the
// room API's other visibility rules.
package spaces

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/spacetree"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Roomserver is what the hierarchy reads of rooms: their current state.
type Roomserver interface {
	CurrentState(ctx context.Context, roomID string) ([]api.Event, error)
}

// Previewer says who may see a room's summary without being joined
// (homeserver/internal/rooms implements it).
type Previewer interface {
	// MayPreview reports whether userID may see roomID's summary; false
	// for a room this server does not know.
	MayPreview(ctx context.Context, roomID, userID string) (bool, error)
}

// Remote asks other servers about rooms this server is not in (the
// federation component).
type Remote interface {
	RemoteHierarchy(ctx context.Context, roomID string, servers []string, suggestedOnly bool) (fedapi.Hierarchy, error)
}

// Deps is what the hierarchy and room summary handlers need.
type Deps struct {
	Rooms   Roomserver
	Preview Previewer
	// Reader reads room versions and memberships for room summaries.
	Reader SummaryReader
	// Aliases resolves aliases for room summaries; nil: only room ids.
	Aliases Aliases
	// Remote describes the children this server is not in; nil: they
	// are left out.
	Remote Remote
}

// Handlers serves the space endpoints and room summaries.
type Handlers struct {
	rooms   Roomserver
	preview Previewer
	reader  SummaryReader
	aliases Aliases
	remote  Remote
}

// New returns the space handlers.
func New(d Deps) *Handlers {
	return &Handlers{rooms: d.Rooms, preview: d.Preview, reader: d.Reader, aliases: d.Aliases, remote: d.Remote}
}

// Limits of a hierarchy request. The spec asks servers for a default and a
// maximum of each; Synapse's page size is 50.
const (
	defaultLimit = 50
	maxLimit     = 100
	maxDepth     = 50
)

// typeJoinRules is the event type room summaries read allowed rooms from.
const typeJoinRules = "m.room.join_rules"

// hierarchyResponse is the body of GET /hierarchy.
type hierarchyResponse struct {
	Rooms     []spacetree.Room `json:"rooms"`
	NextBatch string           `json:"next_batch,omitempty"`
}

// query is what a hierarchy request asks, kept in its paging token so
// that the following pages walk the same tree.
type query struct {
	Root          string `json:"r"`
	SuggestedOnly bool   `json:"s,omitempty"`
	MaxDepth      int    `json:"d"`
	// Skip is the number of rooms the earlier pages returned.
	Skip int `json:"n,omitempty"`
}

// Hierarchy is GET /_matrix/client/v1/rooms/{roomId}/hierarchy: the rooms
// of a space tree, depth first from the requested room, as the spec has
// it: when a child is a space, its own children come before the next
// child. Only m.space.child events with a non-empty via count, in the
// spec's order (the order key, then the event's timestamp, then the room
// id); with suggested_only, only those marked suggested. Each room is
// listed once (loops end there), the rooms the user may not preview are
// left out and not walked. Rooms this server is not in are asked of the
// servers their m.space.child event names (federation /hierarchy, as
// Synapse does): that server decides what it shows, and the children it
// describes in its answer are not asked about again. The requested room
// itself must be visible to the user, else 403, as for an unknown room.
//
// The next_batch token holds the request (its root, max_depth and
// suggested_only, which may not change between pages: 400 otherwise) and
// how many rooms came before; the next page walks the tree again and
// skips them. A tree changed between two pages may so repeat or skip a
// room, which a client paging through a live space must accept anyway.
func (h *Handlers) Hierarchy(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	q, limit, err := parseQuery(r)
	if err != nil {
		return nil, err
	}
	ok, err := h.preview.MayPreview(ctx, q.Root, dev.UserID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, httputil.Forbidden("you may not view this room")
	}

	type entry struct {
		roomID string
		depth  int
		// via are the servers the parent's m.space.child names.
		via []string
	}
	stack := []entry{{q.Root, 0, nil}}
	seen := map[string]bool{}
	// remote holds the summaries other servers gave of rooms this
	// server is not in, children included, so that each is asked once.
	remote := map[string]spacetree.Room{}
	resp := hierarchyResponse{Rooms: []spacetree.Room{}}
	found := 0
	for len(stack) > 0 && len(resp.Rooms) < limit {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[e.roomID] {
			continue
		}
		seen[e.roomID] = true
		var rm spacetree.Room
		if e.depth > 0 {
			ok, err := h.preview.MayPreview(ctx, e.roomID, dev.UserID)
			if err != nil {
				return nil, err
			}
			if !ok {
				if rm, ok, err = h.remoteSummary(ctx, e.roomID, dev.UserID, e.via, q.SuggestedOnly, remote); err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
			}
		}
		if rm.RoomID == "" {
			var err error
			rm, err = h.summary(ctx, e.roomID, q.SuggestedOnly)
			if errors.Is(err, api.ErrRoomNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		if found >= q.Skip {
			resp.Rooms = append(resp.Rooms, rm)
		}
		found++
		if e.depth < q.MaxDepth {
			// Pushed last first, so that the first child comes next.
			for i := len(rm.ChildrenState) - 1; i >= 0; i-- {
				if child := rm.ChildrenState[i]; !seen[child.StateKey] {
					stack = append(stack, entry{child.StateKey, e.depth + 1, child.Via()})
				}
			}
		}
	}
	for len(stack) > 0 && seen[stack[len(stack)-1].roomID] {
		stack = stack[:len(stack)-1]
	}
	if len(stack) > 0 {
		next := q
		next.Skip = found
		resp.NextBatch = next.token()
	}
	return resp, nil
}

// parseQuery reads the request's parameters and, with from, checks them
// against the token's.
func parseQuery(r *http.Request) (query, int, error) {
	qs := r.URL.Query()
	q := query{Root: httputil.PathParam(r, "roomID"), MaxDepth: maxDepth}
	limit := defaultLimit
	if s := qs.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return query{}, 0, httputil.InvalidParam("limit must be a positive integer")
		}
		limit = min(n, maxLimit)
	}
	if s := qs.Get("max_depth"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return query{}, 0, httputil.InvalidParam("max_depth must be a non-negative integer")
		}
		q.MaxDepth = min(n, maxDepth)
	}
	switch s := qs.Get("suggested_only"); s {
	case "", "false":
	case "true":
		q.SuggestedOnly = true
	default:
		return query{}, 0, httputil.InvalidParam("suggested_only must be true or false")
	}
	if from := qs.Get("from"); from != "" {
		t, err := parseToken(from)
		if err != nil {
			return query{}, 0, err
		}
		if t.Root != q.Root || t.SuggestedOnly != q.SuggestedOnly || t.MaxDepth != q.MaxDepth {
			return query{}, 0, httputil.InvalidParam("suggested_only and max_depth cannot change on paginated requests")
		}
		q = t
	}
	return q, limit, nil
}

// token encodes q as an opaque, URL-safe paging token.
func (q query) token() string {
	raw, _ := json.Marshal(q)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// parseToken decodes a token token made; anything else is 400
// M_INVALID_PARAM.
func parseToken(s string) (query, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	var q query
	if err != nil || json.Unmarshal(raw, &q) != nil || q.Root == "" || q.Skip < 0 {
		return query{}, httputil.InvalidParam("from is not a token this server gave")
	}
	return q, nil
}

// summary describes a room from its current state (spacetree.Describe);
// api.ErrRoomNotFound for a room this server does not know.
func (h *Handlers) summary(ctx context.Context, roomID string, suggestedOnly bool) (spacetree.Room, error) {
	evs, err := h.rooms.CurrentState(ctx, roomID)
	if err != nil {
		return spacetree.Room{}, err
	}
	state := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		state[i] = ev.JSON
	}
	return spacetree.Describe(roomID, state, suggestedOnly)
}

// remoteSummary describes a child room this server is not in, as another
// server does: from the answers already given (remote), else asked of
// via. ok is false when the room is known here (the user may not preview
// it), when no server describes it, or when the user may not preview it
// (remoteMayPreview).
func (h *Handlers) remoteSummary(ctx context.Context, roomID, userID string, via []string, suggestedOnly bool, remote map[string]spacetree.Room) (spacetree.Room, bool, error) {
	if rm, ok := remote[roomID]; ok {
		ok, err := h.remoteMayPreview(ctx, rm, userID)
		return rm, ok, err
	}
	if h.remote == nil || len(via) == 0 {
		return spacetree.Room{}, false, nil
	}
	if _, err := h.rooms.CurrentState(ctx, roomID); !errors.Is(err, api.ErrRoomNotFound) {
		return spacetree.Room{}, false, err
	}
	ans, err := h.remote.RemoteHierarchy(ctx, roomID, via, suggestedOnly)
	if err != nil {
		// Another server's room that cannot be described is left out,
		// as one the user may not see.
		return spacetree.Room{}, false, nil
	}
	var rm spacetree.Room
	if json.Unmarshal(ans.Room, &rm) != nil || rm.RoomID != roomID {
		return spacetree.Room{}, false, nil
	}
	ok, err := h.remoteMayPreview(ctx, rm, userID)
	if err != nil || !ok {
		return spacetree.Room{}, false, err
	}
	if rm.ChildrenState == nil {
		rm.ChildrenState = []spacetree.Child{}
	}
	for _, raw := range ans.Children {
		var child spacetree.Room
		if json.Unmarshal(raw, &child) == nil && child.RoomID != "" {
			if child.ChildrenState == nil {
				child.ChildrenState = []spacetree.Child{}
			}
			remote[child.RoomID] = child
		}
	}
	return rm, true, nil
}

// remoteMayPreview reports whether userID may see the summary of a room
// this server is not in, as its server describes it: the rules of
// MayPreview that do not need the room's state here (a public or
// knockable room, world-readable history, or a restricted room one of
// whose allowed rooms the user is joined to here).
func (h *Handlers) remoteMayPreview(ctx context.Context, rm spacetree.Room, userID string) (bool, error) {
	switch {
	case rm.JoinRule == "public", rm.JoinRule == "knock", rm.JoinRule == "knock_restricted", rm.WorldReadable:
		return true, nil
	case !spacetree.Restricted(rm.JoinRule):
		return false, nil
	}
	for _, allowed := range rm.AllowedRoomIDs {
		m, _, err := h.reader.Membership(ctx, allowed, userID)
		if errors.Is(err, api.ErrRoomNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read membership: %w", err)
		}
		if m == "join" {
			return true, nil
		}
	}
	return false, nil
}
