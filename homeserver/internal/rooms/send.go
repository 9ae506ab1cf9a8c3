package rooms

import (
	"encoding/json"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Transaction ids make PUT /send and /redact idempotent per device: a
// retry gets the first attempt's event and sends nothing. The roomserver
// does it: the id goes with the event (api.ProtoEvent.Txn), a retry is
// ordered after the first attempt by the room's sequencer and finds the
// event that attempt committed, and the id is stored in the event's own
// commit, so that no crash can leave an event sent without it.

// sendResponse is the body of /send, /state and /redact.
type sendResponse struct {
	EventID string `json:"event_id"`
}

// Send is PUT /rooms/{roomID}/send/{eventType}/{txnID}.
func (h *Handlers) Send(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	roomID, eventType := httputil.PathParam(r, "roomID"), httputil.PathParam(r, "eventType")
	content, err := h.readContent(r)
	if err != nil {
		return nil, err
	}
	ev := api.ProtoEvent{Type: eventType, Sender: dev.UserID, Content: content}
	if eventType == typeRedaction {
		// A redaction sent as a plain event names its target in the
		// content (room version 11 and later); the roomserver wants it
		// here too.
		var c struct {
			Redacts string `json:"redacts"`
		}
		_ = json.Unmarshal(content, &c)
		ev.Redacts = c.Redacts
	}
	ev.Txn = &api.Txn{DeviceID: dev.DeviceID, Scope: "send " + roomID + " " + eventType, ID: httputil.PathParam(r, "txnID")}
	sent, err := h.send(r.Context(), roomID, ev)
	if err != nil {
		return nil, err
	}
	h.awaitSync(r.Context(), sent)
	return sendResponse{EventID: sent.EventID}, nil
}
