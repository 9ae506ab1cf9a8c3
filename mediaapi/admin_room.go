package mediaapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	mediastore "github.com/matrix-gouv/homeserver/mediaapi/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// RoomTimeline is the one roomserver call the media component makes: the
// admin's "quarantine every media of a room" walks the room's timeline.
// The roomserver implements it, or its NATS client when split.
type RoomTimeline interface {
	Timeline(ctx context.Context, roomID string, from int64, dir rsapi.Direction, limit int) ([]rsapi.Event, error)
}

// timelinePage is how many events each Timeline call returns.
const timelinePage = 500

// adminQuarantineRoom is POST /_synapse/admin/v1/room/{roomId}/media/quarantine:
// every media item whose mxc URI appears in the content of one of the
// room's events (messages, avatars…) is quarantined. Media inside
// encrypted events cannot be seen by the server and are not found.
func (c *Component) adminQuarantineRoom(r *http.Request) (any, error) {
	if err := requireAdmin(r); err != nil {
		return nil, err
	}
	if c.rooms == nil {
		return nil, httputil.Errorf(httputil.CodeUnrecognized, "room media quarantine needs the roomserver")
	}
	roomID := httputil.PathParam(r, "roomId")
	uris, err := c.roomMedia(r.Context(), roomID)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, u := range uris {
		origin, id, _ := strings.Cut(strings.TrimPrefix(u, "mxc://"), "/")
		err := c.store.SetQuarantined(r.Context(), origin, id, true)
		if errors.Is(err, mediastore.ErrNotFound) {
			continue // named in the room, never stored here
		}
		if err != nil {
			return nil, err
		}
		n++
	}
	httputil.Log(r.Context()).WithField(fieldRoomID, roomID).WithField("count", n).Info("room media quarantined by an admin")
	return map[string]any{"num_quarantined": n}, nil
}

// roomMedia returns the distinct mxc URIs in the content of the room's
// events.
func (c *Component) roomMedia(ctx context.Context, roomID string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	from := int64(math.MinInt64) // backfilled history has negative positions
	for {
		events, err := c.rooms.Timeline(ctx, roomID, from, rsapi.Forward, timelinePage)
		if errors.Is(err, rsapi.ErrRoomNotFound) {
			return nil, httputil.NotFound("unknown room")
		}
		if err != nil {
			return nil, err
		}
		for _, ev := range events {
			var pdu struct {
				Content json.RawMessage `json:"content"`
			}
			if json.Unmarshal(ev.JSON, &pdu) != nil {
				continue
			}
			var content any
			if json.Unmarshal(pdu.Content, &content) != nil {
				continue
			}
			collectMXC(content, func(u string) {
				if !seen[u] {
					seen[u] = true
					out = append(out, u)
				}
			})
			from = ev.StreamPos
		}
		if len(events) < timelinePage {
			return out, nil
		}
	}
}

// collectMXC calls found with every mxc://server/id string in v.
func collectMXC(v any, found func(string)) {
	switch x := v.(type) {
	case string:
		if rest, ok := strings.CutPrefix(x, "mxc://"); ok {
			if origin, id, ok := strings.Cut(rest, "/"); ok && origin != "" && id != "" && !strings.Contains(id, "/") {
				found(x)
			}
		}
	case map[string]any:
		for _, e := range x {
			collectMXC(e, found)
		}
	case []any:
		for _, e := range x {
			collectMXC(e, found)
		}
	}
}
