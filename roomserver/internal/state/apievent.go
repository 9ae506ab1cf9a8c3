package state

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// APIEvent turns a stored event into the api form: redacted JSON and the
// redaction itself when a redaction applies.
func (c *Events) APIEvent(ctx context.Context, e *Event) (api.Event, error) {
	return c.apiEvent(ctx, e, e.PDU.RoomID().String())
}

// apiEvent is APIEvent with the room id known (parsing it from the PDU
// validates it, which costs more than the rest of the conversion).
func (c *Events) apiEvent(ctx context.Context, e *Event, roomID string) (api.Event, error) {
	out := api.Event{
		RoomVersion: string(e.PDU.Version()),
		EventID:     e.EventID,
		RoomID:      roomID,
		JSON:        e.JSON,
		StreamPos:   e.Pos(),
	}
	if e.Outlier {
		out.StreamPos = 0
	}
	if e.RedactedBy == "" {
		return out, nil
	}
	v, err := gomatrixserverlib.GetRoomVersion(e.PDU.Version())
	if err != nil {
		return api.Event{}, err
	}
	redacted, err := v.RedactEventJSON(e.JSON)
	if err != nil {
		return api.Event{}, fmt.Errorf("redact event %s: %w", e.EventID, err)
	}
	out.JSON, out.RedactedBy = redacted, e.RedactedBy
	reds, err := c.ByID(ctx, []string{e.RedactedBy})
	if err != nil {
		return api.Event{}, err
	}
	if r, ok := reds[e.RedactedBy]; ok {
		out.RedactedBecause = json.RawMessage(r.JSON)
	} else {
		out.RedactedBecause = json.RawMessage(`{}`)
	}
	return out, nil
}

// APIEvents converts a list of events, in order.
func (c *Events) APIEvents(ctx context.Context, evs []*Event) ([]api.Event, error) {
	out := make([]api.Event, 0, len(evs))
	roomIDs := map[int64]string{}
	for _, e := range evs {
		roomID, ok := roomIDs[e.RoomNID]
		if !ok {
			roomID = e.PDU.RoomID().String()
			roomIDs[e.RoomNID] = roomID
		}
		a, err := c.apiEvent(ctx, e, roomID)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
