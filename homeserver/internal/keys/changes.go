package keys

import (
	"context"
	"net/http"
	"strconv"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// membershipJoin is the membership that makes users share a room.
const membershipJoin = "join"

// Changes is GET /keys/changes?from=&to=: the users who share a room with
// the caller and whose devices or cross-signing keys changed between two
// sync tokens. "left" is always empty here: /sync reports users who stop
// sharing rooms, from membership changes.
func (h *Handlers) Changes(r *http.Request) (any, error) {
	q := r.URL.Query()
	fromTok, toTok := q.Get("from"), q.Get("to")
	if fromTok == "" || toTok == "" {
		return nil, httputil.MissingParam("from and to are required")
	}
	from, err := h.position(fromTok)
	if err != nil {
		return nil, httputil.InvalidParam("from is not a sync token")
	}
	to, err := h.position(toTok)
	if err != nil {
		return nil, httputil.InvalidParam("to is not a sync token")
	}
	changed, err := h.store.ChangedUsers(r.Context(), from, to)
	if err != nil {
		return nil, err
	}
	visible, err := h.sharingRooms(r.Context(), auth.DeviceFrom(r.Context()).UserID, changed)
	if err != nil {
		return nil, err
	}
	return map[string][]string{"changed": visible, "left": {}}, nil
}

func (h *Handlers) position(token string) (int64, error) {
	if h.listPos != nil {
		return h.listPos(token)
	}
	return strconv.ParseInt(token, 10, 64)
}

// sharingRooms keeps those of users who share a joined room with userID
// (userID itself always). Without a roomserver every user is kept.
func (h *Handlers) sharingRooms(ctx context.Context, userID string, users []string) ([]string, error) {
	out := []string{}
	if h.rooms == nil {
		return append(out, users...), nil
	}
	mine, err := h.rooms.RoomsOf(ctx, userID, membershipJoin)
	if err != nil {
		return nil, err
	}
	in := make(map[string]bool, len(mine))
	for _, r := range mine {
		in[r] = true
	}
	for _, u := range users {
		if u == userID {
			out = append(out, u)
			continue
		}
		theirs, err := h.rooms.RoomsOf(ctx, u, membershipJoin)
		if err != nil {
			return nil, err
		}
		for _, r := range theirs {
			if in[r] {
				out = append(out, u)
				break
			}
		}
	}
	return out, nil
}
