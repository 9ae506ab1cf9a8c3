package streams

import (
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// PresenceContent is the content of an m.presence event.
type PresenceContent struct {
	Presence        string `json:"presence"`
	LastActiveAgo   int64  `json:"last_active_ago,omitempty"`
	CurrentlyActive bool   `json:"currently_active"`
	StatusMsg       string `json:"status_msg,omitempty"`
}

// PresenceOf is a stored presence as clients see it at now: online turns
// unavailable after idleAfter without activity.
func PresenceOf(p storage.Presence, now time.Time, idleAfter time.Duration) PresenceContent {
	ago := max(now.Sub(time.UnixMilli(p.LastActiveTS)), 0)
	c := PresenceContent{Presence: p.State, LastActiveAgo: ago.Milliseconds(), StatusMsg: p.StatusMsg}
	if c.Presence == "online" && ago > idleAfter {
		c.Presence = "unavailable"
	}
	c.CurrentlyActive = c.Presence == "online" && ago < 2*time.Minute
	return c
}
