package slidingsync

import (
	"sort"
	"strconv"
	"strings"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Limits on a request, so that one client cannot make a response
// arbitrarily expensive.
const (
	maxTimelineLimit = 100
	maxLists         = 16
	maxRanges        = 16
	maxSubscriptions = 256
	maxRequiredState = 128
	maxConnIDLength  = 64
)

// request is the body of a sliding sync request, as matrix-rust-sdk
// (ruma's sync_events::v5) and matrix-js-sdk send it.
type request struct {
	ConnID            string                `json:"conn_id"`
	TxnID             string                `json:"txn_id"`
	Lists             map[string]*listReq   `json:"lists"`
	RoomSubscriptions map[string]roomConfig `json:"room_subscriptions"`
	// UnsubscribeRooms ends sticky room subscriptions (matrix-js-sdk).
	UnsubscribeRooms []string      `json:"unsubscribe_rooms"`
	Extensions       extensionsReq `json:"extensions"`
}

// roomConfig is what a list or a room subscription wants of each room.
type roomConfig struct {
	// RequiredState holds [type, state_key] pairs; "*" matches any,
	// "$LAZY" (members) the timeline's senders, "$ME" the user.
	RequiredState [][]string `json:"required_state"`
	TimelineLimit *int       `json:"timeline_limit"`
}

// listReq is one list of the request.
type listReq struct {
	Ranges [][]int64 `json:"ranges"`
	roomConfig
	Filters *listFilters `json:"filters"`
}

// listFilters narrow a list; an absent field does not filter.
type listFilters struct {
	IsDM        *bool    `json:"is_dm"`
	Spaces      []string `json:"spaces"`
	IsEncrypted *bool    `json:"is_encrypted"`
	IsInvite    *bool    `json:"is_invite"`
	// RoomTypes and NotRoomTypes hold create types; null stands for rooms
	// without one.
	RoomTypes    []*string `json:"room_types"`
	NotRoomTypes []*string `json:"not_room_types"`
}

// extensionsReq configures the extensions. Each is sticky on a
// connection: a request without it keeps what an earlier one set.
type extensionsReq struct {
	ToDevice    *toDeviceReq `json:"to_device"`
	E2EE        *toggle      `json:"e2ee"`
	AccountData *scoped      `json:"account_data"`
	Receipts    *scoped      `json:"receipts"`
	Typing      *scoped      `json:"typing"`
}

type toggle struct {
	Enabled *bool `json:"enabled"`
}

type toDeviceReq struct {
	Enabled *bool  `json:"enabled"`
	Limit   *int   `json:"limit"`
	Since   string `json:"since"`
}

// scoped is an extension that applies to the rooms of some lists
// (nil: all) and some rooms ("*": every subscription; nil: all of them).
type scoped struct {
	Enabled *bool     `json:"enabled"`
	Lists   *[]string `json:"lists"`
	Rooms   *[]string `json:"rooms"`
}

func (t *toggle) on() bool      { return t != nil && t.Enabled != nil && *t.Enabled }
func (t *toDeviceReq) on() bool { return t != nil && t.Enabled != nil && *t.Enabled }
func (s *scoped) on() bool      { return s != nil && s.Enabled != nil && *s.Enabled }

// validate checks the request's shape and bounds.
func (r *request) validate() error {
	if len(r.ConnID) > maxConnIDLength {
		return httputil.InvalidParam("conn_id is longer than %d characters", maxConnIDLength)
	}
	if len(r.Lists) > maxLists {
		return httputil.InvalidParam("at most %d lists", maxLists)
	}
	if len(r.RoomSubscriptions) > maxSubscriptions {
		return httputil.InvalidParam("at most %d room subscriptions", maxSubscriptions)
	}
	for name, l := range r.Lists {
		if l == nil {
			return httputil.BadJSON("list %q is null", name)
		}
		if len(l.Ranges) > maxRanges {
			return httputil.InvalidParam("list %q: at most %d ranges", name, maxRanges)
		}
		for _, rg := range l.Ranges {
			if len(rg) != 2 || rg[0] < 0 || rg[1] < rg[0] {
				return httputil.InvalidParam("list %q: a range is [start, end] with 0 <= start <= end", name)
			}
		}
		if err := l.roomConfig.validate("list " + strconv.Quote(name)); err != nil {
			return err
		}
	}
	for room, c := range r.RoomSubscriptions {
		if !strings.HasPrefix(room, "!") {
			return httputil.InvalidParam("room_subscriptions: %q is not a room id", room)
		}
		if err := c.validate("room subscription " + room); err != nil {
			return err
		}
	}
	return nil
}

func (c roomConfig) validate(what string) error {
	if len(c.RequiredState) > maxRequiredState {
		return httputil.InvalidParam("%s: at most %d required_state entries", what, maxRequiredState)
	}
	for _, p := range c.RequiredState {
		if len(p) != 2 {
			return httputil.InvalidParam("%s: required_state entries are [type, state_key]", what)
		}
	}
	if c.TimelineLimit != nil && *c.TimelineLimit < 0 {
		return httputil.InvalidParam("%s: timeline_limit must not be negative", what)
	}
	return nil
}

// limit is the config's timeline limit, capped.
func (c roomConfig) limit() int {
	if c.TimelineLimit == nil {
		return 0
	}
	return min(*c.TimelineLimit, maxTimelineLimit)
}

// merge combines two configs that apply to one room: the larger timeline
// and the union of the state, as Synapse does.
func (c roomConfig) merge(o roomConfig) roomConfig {
	out := roomConfig{RequiredState: append(append([][]string{}, c.RequiredState...), o.RequiredState...)}
	l := max(c.limit(), o.limit())
	out.TimelineLimit = &l
	return out
}

// key is a canonical form of the config: a room sent with one key and
// later wanted with another is sent whole again.
func (c roomConfig) key() string {
	pairs := make([]string, 0, len(c.RequiredState))
	for _, p := range c.RequiredState {
		pairs = append(pairs, p[0]+"\x00"+p[1])
	}
	sort.Strings(pairs)
	out := pairs[:0]
	for i, p := range pairs {
		if i == 0 || p != pairs[i-1] {
			out = append(out, p)
		}
	}
	return strconv.Itoa(c.limit()) + "\x01" + strings.Join(out, "\x01")
}

// stateWanted says which state events a config keeps.
type stateWanted struct {
	all     bool
	types   map[string]bool            // every key of the type
	keys    map[string]bool            // any type with the key
	pairs   map[string]map[string]bool // type → key
	lazy    bool
	me      bool
	members bool // every member (m.room.member with *)
}

func (c roomConfig) wanted(me string) stateWanted {
	w := stateWanted{types: map[string]bool{}, keys: map[string]bool{}, pairs: map[string]map[string]bool{}}
	for _, p := range c.RequiredState {
		typ, key := p[0], p[1]
		switch {
		case typ == "*" && key == "*":
			w.all = true
		case typ == "*":
			w.keys[key] = true
		case key == "*":
			w.types[typ] = true
		case typ == "m.room.member" && key == "$LAZY":
			w.lazy = true
		default:
			if key == "$ME" {
				key = me
				if typ == "m.room.member" {
					w.me = true
				}
			}
			if w.pairs[typ] == nil {
				w.pairs[typ] = map[string]bool{}
			}
			w.pairs[typ][key] = true
		}
	}
	return w
}

// keeps reports whether the state event (typ, key) is wanted; lazy are
// the members $LAZY asks for.
func (w stateWanted) keeps(typ, key string, lazy map[string]bool) bool {
	if w.all || w.types[typ] || w.keys[key] || w.pairs[typ][key] {
		return true
	}
	return typ == "m.room.member" && w.lazy && lazy[key]
}
