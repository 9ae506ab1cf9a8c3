// Package spacetree describes the rooms of a space hierarchy from their
// current state: each room's public entry and, for a space, its valid
// m.space.child events in the spec's order. The client API's /hierarchy
// and /room_summary (homeserver/internal/spaces) and the federation
// /hierarchy (federation/) describe rooms with it, so that the two
// answers cannot drift apart.
//
// It is shared plumbing: it reads events as JSON and imports no
// component.
package spacetree

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Entry is a room's public description, the fields of a public room
// directory entry (the spec's PublicRoomsChunk); the roomserver's
// directory gives its entries in this type too (rsapi.PublicRoom).
type Entry struct {
	RoomID string `json:"room_id"`
	// Name, Topic, CanonicalAlias and AvatarURL come from the m.room.name,
	// m.room.topic, m.room.canonical_alias and m.room.avatar events;
	// empty when the room has none.
	Name           string `json:"name,omitempty"`
	Topic          string `json:"topic,omitempty"`
	CanonicalAlias string `json:"canonical_alias,omitempty"`
	AvatarURL      string `json:"avatar_url,omitempty"`
	// NumJoinedMembers counts the members whose membership is join.
	NumJoinedMembers int `json:"num_joined_members"`
	// WorldReadable: history visibility is world_readable.
	WorldReadable bool `json:"world_readable"`
	// GuestCanJoin: guest access is can_join.
	GuestCanJoin bool `json:"guest_can_join"`
	// JoinRule is the room's join rule; "invite" when the room has no
	// m.room.join_rules event, as the auth rules then treat it (the spec
	// has clients assume "public" when the field is absent).
	JoinRule string `json:"join_rule,omitempty"`
	// RoomType is the create event's type ("m.space"), empty for none.
	RoomType string `json:"room_type,omitempty"`
}

// Room is a room's entry in a space hierarchy: its public entry and, for
// a space, its children.
type Room struct {
	Entry
	// ChildrenState are the space's m.space.child events (stripped state
	// with origin_server_ts); empty for a room that is not a space.
	ChildrenState []Child `json:"children_state"`
	// AllowedRoomIDs are, for a restricted room (restricted or
	// knock_restricted join rule), the rooms whose members may join it.
	AllowedRoomIDs []string `json:"allowed_room_ids,omitempty"`
	// RoomVersion and Encryption (the room's encryption algorithm, empty
	// when it has none) tell a client what joining means (MSC3266,
	// unprefixed as Synapse serves them).
	RoomVersion string `json:"room_version,omitempty"`
	Encryption  string `json:"encryption,omitempty"`
}

// Restricted reports whether a join rule lets in the members of the
// rooms its allow list names.
func Restricted(joinRule string) bool {
	return joinRule == "restricted" || joinRule == "knock_restricted"
}

// Child is an m.space.child event as stripped state with its
// origin_server_ts.
type Child struct {
	Type           string          `json:"type"`
	StateKey       string          `json:"state_key"`
	Content        json.RawMessage `json:"content"`
	Sender         string          `json:"sender"`
	OriginServerTS int64           `json:"origin_server_ts"`
}

// Via returns the servers the child event names to reach the room by.
func (c Child) Via() []string {
	var content struct {
		Via []string `json:"via"`
	}
	_ = json.Unmarshal(c.Content, &content)
	return content.Via
}

// Event types, room types and values read.
const (
	typeCreate            = "m.room.create"
	typeMember            = "m.room.member"
	typeSpaceChild        = "m.space.child"
	typeName              = "m.room.name"
	typeTopic             = "m.room.topic"
	typeCanonicalAlias    = "m.room.canonical_alias"
	typeAvatar            = "m.room.avatar"
	typeEncryption        = "m.room.encryption"
	typeJoinRules         = "m.room.join_rules"
	typeHistoryVisibility = "m.room.history_visibility"
	typeGuestAccess       = "m.room.guest_access"
	// RoomTypeSpace is the create event's type of a space.
	RoomTypeSpace = "m.space"
)

// Describe describes roomID from its current state (events as JSON): its
// public entry and, for a space, its valid children in the spec's order
// (only the suggested ones with suggestedOnly). A field of the wrong
// shape (a number for a name) is left empty rather than hiding the room.
func Describe(roomID string, state []json.RawMessage, suggestedOnly bool) (Room, error) {
	rm := Room{Entry: Entry{RoomID: roomID, JoinRule: "invite"}, ChildrenState: []Child{}}
	var children []Child
	var allowed []string
	for _, raw := range state {
		var e struct {
			Type           string          `json:"type"`
			StateKey       string          `json:"state_key"`
			Sender         string          `json:"sender"`
			OriginServerTS int64           `json:"origin_server_ts"`
			Content        json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return Room{}, fmt.Errorf("parse state of %s: %w", roomID, err)
		}
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(e.Content, &fields)
		str := func(key string) string {
			var s string
			_ = json.Unmarshal(fields[key], &s)
			return s
		}
		switch {
		case e.Type == typeMember:
			if str("membership") == "join" {
				rm.NumJoinedMembers++
			}
		case e.Type == typeSpaceChild:
			if ValidChild(e.StateKey, fields, suggestedOnly) {
				children = append(children, Child{Type: e.Type, StateKey: e.StateKey, Content: e.Content,
					Sender: e.Sender, OriginServerTS: e.OriginServerTS})
			}
		case e.StateKey != "":
		case e.Type == typeCreate:
			rm.RoomType = str("type")
			if rm.RoomVersion = str("room_version"); rm.RoomVersion == "" {
				rm.RoomVersion = "1" // the spec's default
			}
		case e.Type == typeEncryption:
			rm.Encryption = str("algorithm")
		case e.Type == typeName:
			rm.Name = str("name")
		case e.Type == typeTopic:
			rm.Topic = str("topic")
		case e.Type == typeCanonicalAlias:
			rm.CanonicalAlias = str("alias")
		case e.Type == typeAvatar:
			rm.AvatarURL = str("url")
		case e.Type == typeJoinRules:
			if jr := str("join_rule"); jr != "" {
				rm.JoinRule = jr
			}
			var allow []struct {
				Type   string `json:"type"`
				RoomID string `json:"room_id"`
			}
			_ = json.Unmarshal(fields["allow"], &allow)
			for _, a := range allow {
				if a.Type == "m.room_membership" && strings.HasPrefix(a.RoomID, "!") {
					allowed = append(allowed, a.RoomID)
				}
			}
		case e.Type == typeHistoryVisibility:
			rm.WorldReadable = str("history_visibility") == "world_readable"
		case e.Type == typeGuestAccess:
			rm.GuestCanJoin = str("guest_access") == "can_join"
		}
	}
	if rm.RoomType == RoomTypeSpace {
		SortChildren(children)
		rm.ChildrenState = children
	}
	if Restricted(rm.JoinRule) {
		rm.AllowedRoomIDs = allowed
	}
	return rm, nil
}

// ValidChild reports whether a space's m.space.child event counts: a room
// id as state key, a non-empty via list, and suggested when only
// suggested children are wanted.
func ValidChild(stateKey string, content map[string]json.RawMessage, suggestedOnly bool) bool {
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

// SortChildren puts a space's children in the spec's order: those with a
// valid order key first, by that key (byte order); then by the event's
// origin_server_ts, then by room id.
func SortChildren(children []Child) {
	order := func(c Child) (string, bool) {
		var o struct {
			Order *string `json:"order"`
		}
		if json.Unmarshal(c.Content, &o) != nil || o.Order == nil || !validOrder(*o.Order) {
			return "", false
		}
		return *o.Order, true
	}
	sort.SliceStable(children, func(i, j int) bool {
		oi, hasI := order(children[i])
		oj, hasJ := order(children[j])
		switch {
		case hasI != hasJ:
			return hasI
		case hasI && oi != oj:
			return oi < oj
		case children[i].OriginServerTS != children[j].OriginServerTS:
			return children[i].OriginServerTS < children[j].OriginServerTS
		}
		return children[i].StateKey < children[j].StateKey
	})
}

// validOrder reports whether an order key is valid: at most 50
// characters, each printable ASCII (0x20 to 0x7E).
func validOrder(s string) bool {
	if len(s) > 50 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}
