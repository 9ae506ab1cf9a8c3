package appservices

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/config"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// RoomReader is what the component reads of rooms to decide which
// bridges an event interests: the current members, and the aliases.
type RoomReader interface {
	CurrentState(ctx context.Context, roomID string) ([]rsapi.Event, error)
	AliasesOf(ctx context.Context, roomID string) ([]string, error)
	RoomsOf(ctx context.Context, userID, membership string) ([]string, error)
}

// pdu is the part of an event's JSON interest and the client format need.
type pdu struct {
	Type           string          `json:"type"`
	Sender         string          `json:"sender"`
	RoomID         string          `json:"room_id"`
	StateKey       *string         `json:"state_key,omitempty"`
	Content        json.RawMessage `json:"content"`
	OriginServerTS int64           `json:"origin_server_ts"`
	Unsigned       json.RawMessage `json:"unsigned,omitempty"`
	Redacts        string          `json:"redacts,omitempty"`
}

// clientEvent is an event as the spec's client format (and so the
// Application Service API) shows it: the PDU's fields a client sees, and
// the event id.
type clientEvent struct {
	EventID string `json:"event_id"`
	pdu
}

// parseEvent reads an output event's PDU.
func parseEvent(ev rsapi.Event) (pdu, error) {
	var p pdu
	if err := json.Unmarshal(ev.JSON, &p); err != nil {
		return pdu{}, fmt.Errorf("parse event %s: %w", ev.EventID, err)
	}
	p.RoomID = ev.RoomID // v12 create events carry none
	return p, nil
}

// clientJSON is the event in the client format.
func clientJSON(ev rsapi.Event, p pdu) (string, error) {
	ce := clientEvent{EventID: ev.EventID, pdu: p}
	if len(ce.Content) == 0 {
		ce.Content = json.RawMessage(`{}`)
	}
	raw, err := json.Marshal(ce)
	if err != nil {
		return "", fmt.Errorf("encode event %s: %w", ev.EventID, err)
	}
	return string(raw), nil
}

// aliasTTL is how long a room's aliases are trusted: aliases change
// without events, so the cache only bounds the lookups.
const aliasTTL = time.Minute

// roomCache is, for one application service, what it knows of rooms:
// which of its users are joined (kept up to date from member events once
// loaded) and whether an alias matches its namespace.
type roomCache struct {
	as    *config.AppService
	rooms RoomReader

	// mu guards byRoom.
	mu     sync.Mutex
	byRoom map[string]*roomInterest
}

// roomInterest is one room's entry.
type roomInterest struct {
	// members are the application service's users joined to the room.
	members map[string]bool
	// aliasMatch says an alias of the room is in the namespace, as of
	// aliasAt.
	aliasMatch bool
	aliasAt    time.Time
}

func newRoomCache(as *config.AppService, rooms RoomReader) *roomCache {
	return &roomCache{as: as, rooms: rooms, byRoom: map[string]*roomInterest{}}
}

// interested reports whether the event interests the application
// service (spec: its sender or state key is one of its users, the room is
// in its namespace or has an alias in it, or one of its users is a
// member), and keeps the member list up to date.
func (c *roomCache) interested(ctx context.Context, p pdu) (bool, error) {
	as := c.as
	member := p.Type == "m.room.member" && p.StateKey != nil
	hit := as.OwnsUser(p.Sender) || (member && as.OwnsUser(*p.StateKey)) || as.MatchesRoom(p.RoomID)
	ri, err := c.room(ctx, p.RoomID)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !hit {
		hit = len(ri.members) > 0 || ri.aliasMatch
	}
	if member && as.OwnsUser(*p.StateKey) {
		var content struct {
			Membership string `json:"membership"`
		}
		_ = json.Unmarshal(p.Content, &content)
		if content.Membership == "join" {
			ri.members[*p.StateKey] = true
		} else {
			delete(ri.members, *p.StateKey)
		}
	}
	return hit, nil
}

// room returns the room's entry, loading it on first sight and its
// aliases when stale.
func (c *roomCache) room(ctx context.Context, roomID string) (*roomInterest, error) {
	c.mu.Lock()
	ri := c.byRoom[roomID]
	c.mu.Unlock()
	if ri == nil {
		state, err := c.rooms.CurrentState(ctx, roomID)
		if err != nil {
			return nil, fmt.Errorf("load members of %s: %w", roomID, err)
		}
		ri = &roomInterest{members: map[string]bool{}}
		for _, ev := range state {
			p, err := parseEvent(ev)
			if err != nil || p.Type != "m.room.member" || p.StateKey == nil || !c.as.OwnsUser(*p.StateKey) {
				continue
			}
			var content struct {
				Membership string `json:"membership"`
			}
			if json.Unmarshal(p.Content, &content) == nil && content.Membership == "join" {
				ri.members[*p.StateKey] = true
			}
		}
		c.mu.Lock()
		if existing := c.byRoom[roomID]; existing != nil {
			ri = existing
		} else {
			c.byRoom[roomID] = ri
		}
		c.mu.Unlock()
	}
	if len(c.as.Namespaces.Aliases) == 0 {
		return ri, nil
	}
	c.mu.Lock()
	stale := time.Since(ri.aliasAt) > aliasTTL
	c.mu.Unlock()
	if stale {
		aliases, err := c.rooms.AliasesOf(ctx, roomID)
		if err != nil {
			return nil, fmt.Errorf("load aliases of %s: %w", roomID, err)
		}
		match := false
		for _, a := range aliases {
			match = match || c.as.MatchesAlias(a, false)
		}
		c.mu.Lock()
		ri.aliasMatch, ri.aliasAt = match, time.Now()
		c.mu.Unlock()
	}
	return ri, nil
}

// roomInterested reports whether the room interests the application
// service (for its ephemeral events): in its room namespace, with an
// alias in its namespace, or with one of its users joined.
func (c *roomCache) roomInterested(ctx context.Context, roomID string) (bool, error) {
	if c.as.MatchesRoom(roomID) {
		return true, nil
	}
	ri, err := c.room(ctx, roomID)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(ri.members) > 0 || ri.aliasMatch, nil
}

// userInterested reports whether a user's presence interests the
// application service: one of its users, or sharing a room with one.
func (c *roomCache) userInterested(ctx context.Context, userID string) (bool, error) {
	if c.as.OwnsUser(userID) {
		return true, nil
	}
	rooms, err := c.rooms.RoomsOf(ctx, userID, "join")
	if err != nil {
		return false, fmt.Errorf("rooms of %s: %w", userID, err)
	}
	for _, roomID := range rooms {
		if ok, err := c.roomInterested(ctx, roomID); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}
