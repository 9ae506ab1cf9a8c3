package events

import (
	"encoding/json"
	"strings"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Filter is the part of a RoomEventFilter that /messages and
// /context apply: event types and senders (with "*" wildcards in types),
// rooms, contains_url, limit and lazy_load_members. Unknown keys
// (related_by_*) are accepted and ignored.
type Filter struct {
	Limit *int `json:"limit"`
	// Types and Senders are nil when absent (everything passes); an
	// empty list lets nothing through.
	Types      *[]string `json:"types"`
	NotTypes   []string  `json:"not_types"`
	Senders    *[]string `json:"senders"`
	NotSenders []string  `json:"not_senders"`
	Rooms      *[]string `json:"rooms"`
	NotRooms   []string  `json:"not_rooms"`
	// ContainsURL, when set, keeps only events whose content has (true)
	// or has not (false) a url key.
	ContainsURL     *bool `json:"contains_url"`
	LazyLoadMembers bool  `json:"lazy_load_members"`
	// IncludeRedundantMembers asks, with LazyLoadMembers, for the member
	// events of senders even when the client was sent them before.
	IncludeRedundantMembers bool `json:"include_redundant_members"`
	// UnreadThreadNotifications asks /sync for unread counts per thread.
	UnreadThreadNotifications bool `json:"unread_thread_notifications"`
}

// ParseFilter reads the filter query parameter: "" is no filter; bad JSON
// is 400 M_NOT_JSON or M_BAD_JSON.
func ParseFilter(raw string) (Filter, error) {
	var f Filter
	if raw == "" {
		return f, nil
	}
	if err := httputil.UnmarshalBody([]byte(raw), &f); err != nil {
		return Filter{}, err
	}
	if f.Limit != nil && *f.Limit < 0 {
		return Filter{}, httputil.BadJSON("filter limit must not be negative")
	}
	return f, nil
}

// allowsRoom reports whether the filter lets events of roomID through.
func (f Filter) AllowsRoom(roomID string) bool {
	if f.Rooms != nil && !contains(*f.Rooms, roomID, false) {
		return false
	}
	return !contains(f.NotRooms, roomID, false)
}

// allows reports whether the filter lets e through (rooms aside).
func (f Filter) Allows(e Event) bool {
	if f.Types != nil && !contains(*f.Types, e.Type, true) {
		return false
	}
	if contains(f.NotTypes, e.Type, true) {
		return false
	}
	if f.Senders != nil && !contains(*f.Senders, e.Sender, false) {
		return false
	}
	if contains(f.NotSenders, e.Sender, false) {
		return false
	}
	if f.ContainsURL != nil {
		var c map[string]json.RawMessage
		_ = json.Unmarshal(e.Content, &c)
		_, has := c["url"]
		if has != *f.ContainsURL {
			return false
		}
	}
	return true
}

// contains reports whether list holds v; with wildcards, an entry may use
// "*" for any run of characters.
func contains(list []string, v string, wildcards bool) bool {
	for _, p := range list {
		if p == v || (wildcards && strings.Contains(p, "*") && globMatch(p, v)) {
			return true
		}
	}
	return false
}

// globMatch matches v against pattern, where "*" stands for any run of
// characters (and nothing else is special).
func globMatch(pattern, v string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == v
	}
	if !strings.HasPrefix(v, parts[0]) {
		return false
	}
	v = v[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(v, p)
		if i < 0 {
			return false
		}
		v = v[i+len(p):]
	}
	return strings.HasSuffix(v, last)
}
