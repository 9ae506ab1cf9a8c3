package syncv3

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Filter is a sync filter (the spec's Filter): what /sync returns.
type Filter struct {
	EventFields []string      `json:"event_fields,omitempty"`
	EventFormat string        `json:"event_format,omitempty"`
	AccountData events.Filter `json:"account_data"`
	Presence    events.Filter `json:"presence"`
	Room        RoomFilter    `json:"room"`
}

// RoomFilter is a Filter's room part.
type RoomFilter struct {
	Rooms        *[]string     `json:"rooms,omitempty"`
	NotRooms     []string      `json:"not_rooms,omitempty"`
	IncludeLeave bool          `json:"include_leave,omitempty"`
	Timeline     events.Filter `json:"timeline"`
	State        events.Filter `json:"state"`
	Ephemeral    events.Filter `json:"ephemeral"`
	AccountData  events.Filter `json:"account_data"`
}

// allowsRoom reports whether the filter lets roomID through at all.
func (f RoomFilter) allowsRoom(roomID string) bool {
	if f.Rooms != nil && !contains(*f.Rooms, roomID) {
		return false
	}
	return !contains(f.NotRooms, roomID)
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// defaultTimelineLimit is the timeline limit without a filter's.
const defaultTimelineLimit = 10

// timelineLimit is the filter's timeline limit, capped.
func (f Filter) timelineLimit() int {
	if f.Room.Timeline.Limit == nil {
		return defaultTimelineLimit
	}
	return min(max(*f.Room.Timeline.Limit, 0), 100)
}

// parseFilter reads a Filter's JSON.
func parseFilter(raw []byte) (Filter, error) {
	var f Filter
	if err := httputil.UnmarshalBody(raw, &f); err != nil {
		return Filter{}, err
	}
	if f.EventFormat != "" && f.EventFormat != "client" && f.EventFormat != "federation" {
		return Filter{}, httputil.BadJSON("event_format must be client or federation")
	}
	for _, lim := range []*int{f.AccountData.Limit, f.Presence.Limit, f.Room.Timeline.Limit, f.Room.State.Limit, f.Room.Ephemeral.Limit, f.Room.AccountData.Limit} {
		if lim != nil && *lim < 0 {
			return Filter{}, httputil.BadJSON("filter limits must not be negative")
		}
	}
	return f, nil
}

// requestFilter reads the filter query parameter of /sync: a filter id of
// the user's, or inline JSON.
func (h *Handlers) requestFilter(r *http.Request, userID string) (Filter, error) {
	raw := r.URL.Query().Get("filter")
	if raw == "" {
		return Filter{}, nil
	}
	if strings.HasPrefix(strings.TrimSpace(raw), "{") {
		return parseFilter([]byte(raw))
	}
	stored, err := h.Store.GetFilter(r.Context(), userID, raw)
	if errors.Is(err, storage.ErrNotFound) {
		return Filter{}, httputil.Errorf(httputil.CodeInvalidParam, "no filter %q", raw)
	}
	if err != nil {
		return Filter{}, err
	}
	return parseFilter(stored)
}

// checkFilterOwner refuses a filter request about another user.
func checkFilterOwner(r *http.Request) (string, error) {
	userID := auth.DeviceFrom(r.Context()).UserID
	if httputil.PathParam(r, "userID") != userID {
		return "", httputil.Forbidden("cannot use filters of other users")
	}
	return userID, nil
}

// PutFilter serves POST /user/{userID}/filter.
func (h *Handlers) PutFilter(r *http.Request) (any, error) {
	userID, err := checkFilterOwner(r)
	if err != nil {
		return nil, err
	}
	body, err := httputil.ReadBody(r, h.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	f, err := parseFilter(body)
	if err != nil {
		return nil, err
	}
	canonical, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	id, err := h.Store.PutFilter(r.Context(), userID, canonical)
	if err != nil {
		return nil, err
	}
	return map[string]string{"filter_id": id}, nil
}

// GetFilter serves GET /user/{userID}/filter/{filterID}.
func (h *Handlers) GetFilter(r *http.Request) (any, error) {
	userID, err := checkFilterOwner(r)
	if err != nil {
		return nil, err
	}
	raw, err := h.Store.GetFilter(r.Context(), userID, httputil.PathParam(r, "filterID"))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.NotFound("no such filter")
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(raw), nil
}

// eventOfType is a stand-in event of type typ, to apply a filter's types
// to what is not a room event (account data, ephemeral).
func eventOfType(typ string) events.Event { return events.Event{Type: typ} }

// eventFrom is a stand-in event of type typ from sender (presence).
func eventFrom(typ, sender string) events.Event { return events.Event{Type: typ, Sender: sender} }
