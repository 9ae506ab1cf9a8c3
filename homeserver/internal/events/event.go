// Package events is the client-server API's view of room events: the
// roomserver's accepted events parsed once (Event), turned into the
// client format (Client, Formatter), and the RoomEventFilter that the
// room API and /sync apply (Filter).
package events

import (
	"encoding/json"
	"fmt"

	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Event is an accepted event with the PDU fields the room API reads,
// parsed once.
type Event struct {
	api.Event
	Type           string
	StateKey       *string
	Sender         string
	OriginServerTS int64
	Content        json.RawMessage
	// Redacts is the event a redaction redacts: top-level in room
	// versions before 11, in the content from 11 on.
	Redacts string
}

// pduFields are the PDU keys Parse reads.
type pduFields struct {
	Type           string          `json:"type"`
	StateKey       *string         `json:"state_key"`
	Sender         string          `json:"sender"`
	OriginServerTS int64           `json:"origin_server_ts"`
	Content        json.RawMessage `json:"content"`
	Redacts        string          `json:"redacts"`
}

// Parse reads the fields of ev's PDU.
func Parse(ev api.Event) (Event, error) {
	var f pduFields
	if err := json.Unmarshal(ev.JSON, &f); err != nil {
		return Event{}, fmt.Errorf("parse event %s: %w", ev.EventID, err)
	}
	if len(f.Content) == 0 || string(f.Content) == "null" {
		f.Content = json.RawMessage("{}")
	}
	e := Event{Event: ev, Type: f.Type, StateKey: f.StateKey, Sender: f.Sender,
		OriginServerTS: f.OriginServerTS, Content: f.Content, Redacts: f.Redacts}
	if e.Type == "m.room.redaction" && e.Redacts == "" {
		var c struct {
			Redacts string `json:"redacts"`
		}
		if json.Unmarshal(e.Content, &c) == nil {
			e.Redacts = c.Redacts
		}
	}
	return e, nil
}

// ParseAll parses a list of events, in order.
func ParseAll(evs []api.Event) ([]Event, error) {
	out := make([]Event, 0, len(evs))
	for _, ev := range evs {
		e, err := Parse(ev)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// isState reports whether e is a state event.
func (e Event) IsState() bool { return e.StateKey != nil }

// key returns the state key of a state event.
func (e Event) Key() api.StateKey {
	if e.StateKey == nil {
		return api.StateKey{Type: e.Type}
	}
	return api.StateKey{Type: e.Type, StateKey: *e.StateKey}
}

// membership returns the membership a member event sets ("" for other
// events or bad content).
func (e Event) Membership() string {
	if e.Type != "m.room.member" {
		return ""
	}
	return MembershipOf(e.Content)
}

// MembershipOf reads content.membership.
func MembershipOf(content json.RawMessage) string {
	var c struct {
		Membership string `json:"membership"`
	}
	_ = json.Unmarshal(content, &c)
	return c.Membership
}
