// Package syncv3 serves GET /sync (the client-server API's sync, v3) and
// the filter endpoints. It reads the streams of homeserver/internal/streams
// up to the notifier's current position, builds the response for one
// device, and long-polls on the notifier when there is nothing new.
//
// Room content (timelines, state) comes from the roomserver's Reader;
// what is per user (memberships in stream order, receipts, account data,
// presence, to-device, device lists) from the homeserver's own tables.
package syncv3

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Rooms is what sync reads of the roomserver.
type Rooms interface {
	rsapi.Reader
	Aggregations(ctx context.Context, userID string, eventIDs []string) (map[string]rsapi.Aggregation, error)
}

// Counter gives unread notification counts (push rule evaluation's),
// counted from the user's read receipts in the room.
type Counter interface {
	UnreadCounts(ctx context.Context, userID, roomID string) (total Counts, perThread map[string]Counts, err error)
}

// Counts are a room's (or thread's) unread notifications and highlights.
type Counts struct {
	Notifications int `json:"notification_count"`
	Highlights    int `json:"highlight_count"`
}

// IgnoredUsers gives the users a user ignores (m.ignored_user_list).
type IgnoredUsers interface {
	IgnoredUsers(ctx context.Context, userID string) (map[string]bool, error)
}

// PushRules gives the content of a user's m.push_rules account data.
type PushRules interface {
	AccountDataContent(ctx context.Context, userID string) ([]byte, error)
}

// Deps is what the sync handlers need.
type Deps struct {
	Store    *storage.Store
	Rooms    Rooms
	Notifier *streams.Notifier
	Typing   *streams.Typing
	// Counter and PushRules are nil until push rules run: counts are then
	// zero and m.push_rules absent.
	Counter   Counter
	PushRules PushRules
	// Ignored gives ignore lists (cached with push's, which the account
	// data handlers refresh).
	Ignored IgnoredUsers
	Log     *logrus.Entry
	// Presence turns presence on; off, /sync never reports it.
	Presence bool
	// Federation, when set, tells other servers of presence that a sync
	// changes (a user coming online).
	Federation hsapi.EDUSender
	// MaxRequestBytes bounds request bodies (filters).
	MaxRequestBytes int64
}

// Handlers serves /sync and the filter endpoints.
type Handlers struct {
	Deps
	now       func() time.Time
	presence  presenceCache
	keyCounts keyCountCache
	delivered deliveries
}

// New returns the sync handlers.
func New(d Deps) *Handlers { return &Handlers{Deps: d, now: time.Now} }
