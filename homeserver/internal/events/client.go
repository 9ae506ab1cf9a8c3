package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Client is the client-server API's event format (ClientEvent).
type Client struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	// Redacts is kept at the top level for redactions in every room
	// version, as Synapse does, for clients that read it there.
	Redacts  string    `json:"redacts,omitempty"`
	Unsigned *Unsigned `json:"unsigned,omitempty"`
}

// Unsigned is a client event's unsigned data, made by this server.
type Unsigned struct {
	// Age is the time since the event was sent, in milliseconds.
	Age int64 `json:"age"`
	// TransactionID is given only to the device that sent the event.
	TransactionID string `json:"transaction_id,omitempty"`
	// RedactedBecause is the redaction that redacted the event.
	RedactedBecause *Client `json:"redacted_because,omitempty"`
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
	Replace   *Client           `json:"m.replace,omitempty"`
	Reference *referenceSection `json:"m.reference,omitempty"`
}

type threadSection struct {
	LatestEvent             Client `json:"latest_event"`
	Count                   int64  `json:"count"`
	CurrentUserParticipated bool   `json:"current_user_participated"`
}

type referenceSection struct {
	Chunk []eventIDOnly `json:"chunk"`
}

type eventIDOnly struct {
	EventID string `json:"event_id"`
}

// Formatter turns events into client events for one device.
type Formatter struct {
	now time.Time
	// txnIDs maps the events the device sent to their transaction ids.
	txnIDs map[string]string
	// aggs are the relation aggregations of the events to format.
	aggs map[string]api.Aggregation
}

// Relations looks up the aggregations of events' relations for a user
// (the roomserver's api.Relations has it).
type Relations interface {
	Aggregations(ctx context.Context, userID string, eventIDs []string) (map[string]api.Aggregation, error)
}

// TxnIDs looks up the transaction ids a device sent events with.
type TxnIDs interface {
	TxnIDs(ctx context.Context, userID, deviceID string, eventIDs []string) (map[string]string, error)
}

// NewFormatter returns a Formatter for dev's view of evs at time now: it
// looks up the transaction ids of those evs the device sent, and the
// aggregations of their relations.
func NewFormatter(ctx context.Context, rel Relations, txns TxnIDs, now time.Time, dev hsapi.Device, evs ...[]Event) (*Formatter, error) {
	var mine, all []string
	for _, list := range evs {
		for _, e := range list {
			if e.Sender == dev.UserID {
				mine = append(mine, e.EventID)
			}
			if !e.IsState() && e.RedactedBecause == nil {
				all = append(all, e.EventID)
			}
		}
	}
	f := &Formatter{now: now}
	if len(all) > 0 {
		aggs, err := rel.Aggregations(ctx, dev.UserID, all)
		if err != nil {
			return nil, fmt.Errorf("aggregate relations: %w", err)
		}
		f.aggs = aggs
	}
	if len(mine) == 0 || dev.DeviceID == "" {
		return f, nil
	}
	ids, err := txns.TxnIDs(ctx, dev.UserID, dev.DeviceID, mine)
	if err != nil {
		return nil, err
	}
	f.txnIDs = ids
	return f, nil
}

func (f *Formatter) Format(e Event, prev *Event) Client {
	ce := Client{
		Content:        e.Content,
		EventID:        e.EventID,
		OriginServerTS: e.OriginServerTS,
		RoomID:         e.RoomID,
		Sender:         e.Sender,
		StateKey:       e.StateKey,
		Type:           e.Type,
		Redacts:        e.Redacts,
		Unsigned:       &Unsigned{Age: max(f.now.UnixMilli()-e.OriginServerTS, 0), TransactionID: f.txnIDs[e.EventID]},
	}
	if prev != nil {
		ce.Unsigned.PrevContent = prev.Content
		ce.Unsigned.ReplacesState = prev.EventID
	}
	if agg, ok := f.aggs[e.EventID]; ok {
		ce.Unsigned.Relations = f.relations(agg)
	}
	if e.RedactedBecause != nil {
		if red, err := RedactionOf(e); err == nil {
			rce := f.Format(red, nil)
			ce.Unsigned.RedactedBecause = &rce
		} else {
			// The redaction is there but unreadable: say the event is
			// redacted all the same.
			ce.Unsigned.RedactedBecause = &Client{Content: json.RawMessage("{}"), RoomID: e.RoomID}
		}
	}
	return ce
}

// relations formats an event's aggregations; the events inside are
// formatted without aggregations of their own.
func (f *Formatter) relations(agg api.Aggregation) *relationsSection {
	inner := &Formatter{now: f.now, txnIDs: f.txnIDs}
	rel := &relationsSection{}
	if t := agg.Thread; t != nil {
		if latest, err := Parse(t.Latest); err == nil {
			rel.Thread = &threadSection{LatestEvent: inner.Format(latest, nil), Count: t.Count, CurrentUserParticipated: t.CurrentUserParticipated}
		}
	}
	if agg.Replace != nil {
		if edit, err := Parse(*agg.Replace); err == nil {
			ce := inner.Format(edit, nil)
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
func (f *Formatter) FormatAll(evs []Event, prevs map[string]*Event) []Client {
	out := make([]Client, 0, len(evs))
	for _, e := range evs {
		out = append(out, f.Format(e, prevs[e.EventID]))
	}
	return out
}

// RedactionOf parses the redaction that redacted e. Its PDU carries no
// event id in room versions 3 and later, so the id is computed.
func RedactionOf(e Event) (Event, error) {
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(e.RoomVersion))
	if err != nil {
		return Event{}, fmt.Errorf("redaction of %s: %w", e.EventID, err)
	}
	pdu, err := v.NewEventFromTrustedJSON(e.RedactedBecause, false)
	if err != nil {
		return Event{}, fmt.Errorf("redaction of %s: %w", e.EventID, err)
	}
	return Parse(api.Event{RoomVersion: e.RoomVersion, EventID: pdu.EventID(), RoomID: e.RoomID, JSON: e.RedactedBecause})
}
