package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// roomEvent is an accepted event with the PDU fields the room API reads,
// parsed once.
type roomEvent struct {
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

// pduFields are the PDU keys parseEvent reads.
type pduFields struct {
	Type           string          `json:"type"`
	StateKey       *string         `json:"state_key"`
	Sender         string          `json:"sender"`
	OriginServerTS int64           `json:"origin_server_ts"`
	Content        json.RawMessage `json:"content"`
	Redacts        string          `json:"redacts"`
}

// parseEvent reads the fields of ev's PDU.
func parseEvent(ev api.Event) (roomEvent, error) {
	var f pduFields
	if err := json.Unmarshal(ev.JSON, &f); err != nil {
		return roomEvent{}, fmt.Errorf("parse event %s: %w", ev.EventID, err)
	}
	if len(f.Content) == 0 || string(f.Content) == "null" {
		f.Content = json.RawMessage("{}")
	}
	e := roomEvent{Event: ev, Type: f.Type, StateKey: f.StateKey, Sender: f.Sender,
		OriginServerTS: f.OriginServerTS, Content: f.Content, Redacts: f.Redacts}
	if e.Type == typeRedaction && e.Redacts == "" {
		var c struct {
			Redacts string `json:"redacts"`
		}
		if json.Unmarshal(e.Content, &c) == nil {
			e.Redacts = c.Redacts
		}
	}
	return e, nil
}

// parseEvents parses a list of events, in order.
func parseEvents(evs []api.Event) ([]roomEvent, error) {
	out := make([]roomEvent, 0, len(evs))
	for _, ev := range evs {
		e, err := parseEvent(ev)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// isState reports whether e is a state event.
func (e roomEvent) isState() bool { return e.StateKey != nil }

// key returns the state key of a state event.
func (e roomEvent) key() api.StateKey {
	if e.StateKey == nil {
		return api.StateKey{Type: e.Type}
	}
	return api.StateKey{Type: e.Type, StateKey: *e.StateKey}
}

// membership returns the membership a member event sets ("" for other
// events or bad content).
func (e roomEvent) membership() string {
	if e.Type != typeMember {
		return ""
	}
	return membershipOf(e.Content)
}

// membershipOf reads content.membership.
func membershipOf(content json.RawMessage) string {
	var c struct {
		Membership string `json:"membership"`
	}
	_ = json.Unmarshal(content, &c)
	return c.Membership
}

// clientEvent is the client-server API's event format (ClientEvent).
type clientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	// Redacts is kept at the top level for redactions in every room
	// version, as Synapse does, for clients that read it there.
	Redacts  string           `json:"redacts,omitempty"`
	Unsigned *unsignedSection `json:"unsigned,omitempty"`
}

// unsignedSection is a client event's unsigned data, made by this server.
type unsignedSection struct {
	// Age is the time since the event was sent, in milliseconds.
	Age int64 `json:"age"`
	// TransactionID is given only to the device that sent the event.
	TransactionID string `json:"transaction_id,omitempty"`
	// RedactedBecause is the redaction that redacted the event.
	RedactedBecause *clientEvent `json:"redacted_because,omitempty"`
	// PrevContent and ReplacesState describe the state event a state
	// event replaced, when known.
	PrevContent   json.RawMessage `json:"prev_content,omitempty"`
	ReplacesState string          `json:"replaces_state,omitempty"`
	// Relations are the server-side aggregations of the event's
	// relations: threads, edits and references (reactions are not
	// aggregated).
	Relations *relationsSection `json:"m.relations,omitempty"`
}

// relationsSection is unsigned.m.relations.
type relationsSection struct {
	Thread *threadSection `json:"m.thread,omitempty"`
	// Replace is the most recent valid edit, whole (spec v1.7).
	Replace   *clientEvent      `json:"m.replace,omitempty"`
	Reference *referenceSection `json:"m.reference,omitempty"`
}

type threadSection struct {
	LatestEvent             clientEvent `json:"latest_event"`
	Count                   int64       `json:"count"`
	CurrentUserParticipated bool        `json:"current_user_participated"`
}

type referenceSection struct {
	Chunk []eventIDOnly `json:"chunk"`
}

type eventIDOnly struct {
	EventID string `json:"event_id"`
}

// formatter turns events into client events for one device.
type formatter struct {
	now time.Time
	// txnIDs maps the events the device sent to their transaction ids.
	txnIDs map[string]string
	// aggs are the relation aggregations of the events to format.
	aggs map[string]api.Aggregation
}

// newFormatter returns a formatter for dev's view of evs: it looks up the
// transaction ids of those evs the device sent, and the aggregations of
// their relations.
func (h *Handlers) newFormatter(ctx context.Context, dev hsapi.Device, evs ...[]roomEvent) (*formatter, error) {
	var mine, all []string
	for _, list := range evs {
		for _, e := range list {
			if e.Sender == dev.UserID {
				mine = append(mine, e.EventID)
			}
			if !e.isState() && e.RedactedBecause == nil {
				all = append(all, e.EventID)
			}
		}
	}
	f := &formatter{now: h.now()}
	if len(all) > 0 {
		aggs, err := h.rooms.Aggregations(ctx, dev.UserID, all)
		if err != nil {
			return nil, fmt.Errorf("aggregate relations: %w", err)
		}
		f.aggs = aggs
	}
	if len(mine) == 0 || dev.DeviceID == "" {
		return f, nil
	}
	ids, err := h.store.TxnIDs(ctx, dev.UserID, dev.DeviceID, mine)
	if err != nil {
		return nil, err
	}
	f.txnIDs = ids
	return f, nil
}

// format returns e in the client format; prev, when not nil, is the state
// event e replaced.
func (f *formatter) format(e roomEvent, prev *roomEvent) clientEvent {
	ce := clientEvent{
		Content:        e.Content,
		EventID:        e.EventID,
		OriginServerTS: e.OriginServerTS,
		RoomID:         e.RoomID,
		Sender:         e.Sender,
		StateKey:       e.StateKey,
		Type:           e.Type,
		Redacts:        e.Redacts,
		Unsigned:       &unsignedSection{Age: max(f.now.UnixMilli()-e.OriginServerTS, 0), TransactionID: f.txnIDs[e.EventID]},
	}
	if prev != nil {
		ce.Unsigned.PrevContent = prev.Content
		ce.Unsigned.ReplacesState = prev.EventID
	}
	if agg, ok := f.aggs[e.EventID]; ok {
		ce.Unsigned.Relations = f.relations(agg)
	}
	if e.RedactedBecause != nil {
		if red, err := redactionEvent(e); err == nil {
			rce := f.format(red, nil)
			ce.Unsigned.RedactedBecause = &rce
		} else {
			// The redaction is there but unreadable: say the event is
			// redacted all the same.
			ce.Unsigned.RedactedBecause = &clientEvent{Content: json.RawMessage("{}"), RoomID: e.RoomID}
		}
	}
	return ce
}

// relations formats an event's aggregations; the events inside are
// formatted without aggregations of their own.
func (f *formatter) relations(agg api.Aggregation) *relationsSection {
	inner := &formatter{now: f.now, txnIDs: f.txnIDs}
	rel := &relationsSection{}
	if t := agg.Thread; t != nil {
		if latest, err := parseEvent(t.Latest); err == nil {
			rel.Thread = &threadSection{LatestEvent: inner.format(latest, nil), Count: t.Count, CurrentUserParticipated: t.CurrentUserParticipated}
		}
	}
	if agg.Replace != nil {
		if edit, err := parseEvent(*agg.Replace); err == nil {
			ce := inner.format(edit, nil)
			rel.Replace = &ce
		}
	}
	if len(agg.References) > 0 {
		rel.Reference = &referenceSection{}
		for _, id := range agg.References {
			rel.Reference.Chunk = append(rel.Reference.Chunk, eventIDOnly{EventID: id})
		}
	}
	if rel.Thread == nil && rel.Replace == nil && rel.Reference == nil {
		return nil
	}
	return rel
}

// formatAll formats events in order, with their replaced state when
// prevs has it.
func (f *formatter) formatAll(evs []roomEvent, prevs map[string]*roomEvent) []clientEvent {
	out := make([]clientEvent, 0, len(evs))
	for _, e := range evs {
		out = append(out, f.format(e, prevs[e.EventID]))
	}
	return out
}

// redactionEvent parses the redaction that redacted e. Its PDU carries no
// event id in room versions 3 and later, so the id is computed.
func redactionEvent(e roomEvent) (roomEvent, error) {
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(e.RoomVersion))
	if err != nil {
		return roomEvent{}, fmt.Errorf("redaction of %s: %w", e.EventID, err)
	}
	pdu, err := v.NewEventFromTrustedJSON(e.RedactedBecause, false)
	if err != nil {
		return roomEvent{}, fmt.Errorf("redaction of %s: %w", e.EventID, err)
	}
	return parseEvent(api.Event{RoomVersion: e.RoomVersion, EventID: pdu.EventID(), RoomID: e.RoomID, JSON: e.RedactedBecause})
}
