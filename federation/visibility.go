package federation

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// History visibility values (m.room.history_visibility).
const (
	visibilityInvited = "invited"
	visibilityJoined  = "joined"
)

// forServer applies history visibility to events served to server: an
// event of a room whose history was "joined" (or "invited") when it was
// sent, while none of the server's users was joined (or invited), is
// given redacted, as Synapse does, so that a ministry joining later does
// not read what was said before; "shared" and "world_readable" history is
// given whole.
func (c *Component) forServer(ctx context.Context, server spec.ServerName, evs []rsapi.Event) ([]rsapi.Event, error) {
	out := make([]rsapi.Event, 0, len(evs))
	for _, ev := range evs {
		visible, err := c.visibleTo(ctx, server, ev)
		if err != nil {
			return nil, err
		}
		if !visible {
			v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(ev.RoomVersion))
			if err != nil {
				return nil, err
			}
			if ev.JSON, err = v.RedactEventJSON(ev.JSON); err != nil {
				return nil, fmt.Errorf("redact %s: %w", ev.EventID, err)
			}
		}
		out = append(out, ev)
	}
	return out, nil
}

// mustSee refuses (403) the room's state or auth chain at an event that
// history visibility hides from server: what the room was like then is
// as much history as what was said.
func (c *Component) mustSee(ctx context.Context, server spec.ServerName, ev rsapi.Event) error {
	visible, err := c.visibleTo(ctx, server, ev)
	if err != nil {
		return err
	}
	if !visible {
		return httputil.Forbidden("history visibility hides this event from your server")
	}
	return nil
}

// visibleTo reports whether server may see ev whole.
func (c *Component) visibleTo(ctx context.Context, server spec.ServerName, ev rsapi.Event) (bool, error) {
	state, err := c.rooms.StateBefore(ctx, ev.EventID)
	if err != nil {
		return false, err
	}
	visibility := "shared" // the spec's default
	type head struct {
		Type     string `json:"type"`
		StateKey string `json:"state_key"`
		Content  struct {
			HistoryVisibility string `json:"history_visibility"`
			Membership        string `json:"membership"`
		} `json:"content"`
	}
	var members []head
	for _, e := range state {
		var h head
		if json.Unmarshal(e.JSON, &h) != nil {
			continue
		}
		switch h.Type {
		case spec.MRoomHistoryVisibility:
			if h.Content.HistoryVisibility != "" {
				visibility = h.Content.HistoryVisibility
			}
		case spec.MRoomMember:
			if serverOf(h.StateKey) == string(server) {
				members = append(members, h)
			}
		}
	}
	if visibility != visibilityJoined && visibility != visibilityInvited {
		return true, nil
	}
	for _, m := range members {
		if m.Content.Membership == spec.Join || visibility == visibilityInvited && m.Content.Membership == spec.Invite {
			return true, nil
		}
	}
	return false, nil
}
