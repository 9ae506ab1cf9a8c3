package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// redactRequest is the body of PUT /redact.
type redactRequest struct {
	Reason *string `json:"reason"`
}

// Redact is PUT /rooms/{roomID}/redact/{eventID}/{txnID}, idempotent per
// device like Send. From room version 3 on the auth rules accept any
// redaction and leave it unapplied when its sender may not redact; like
// Synapse, the client API refuses that case itself (403): only the
// sender of the event or a user with the redact power level may redact.
func (h *Handlers) Redact(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID, target := httputil.PathParam(r, "roomID"), httputil.PathParam(r, "eventID")
	if !strings.HasPrefix(target, "$") {
		return nil, httputil.InvalidParam("%q is not an event id", target)
	}
	body, err := httputil.ReadBody(r, h.cfg.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	if _, err := checkContent(body); err != nil {
		return nil, err
	}
	var req redactRequest
	if err := httputil.UnmarshalBody(body, &req); err != nil {
		return nil, err
	}
	content := map[string]any{}
	if req.Reason != nil {
		content["reason"] = *req.Reason
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("encode redaction: %w", err)
	}
	txn := &api.Txn{DeviceID: dev.DeviceID, Scope: "redact " + roomID + " " + target, ID: httputil.PathParam(r, "txnID")}
	// A retry whose first attempt reached the rooms stream answers with
	// it at once, whatever the checks would say now.
	key := storage.TxnKey{UserID: dev.UserID, DeviceID: dev.DeviceID, Scope: txn.Scope, TxnID: txn.ID}
	if eventID, ok, err := h.store.TxnEvent(ctx, key); err != nil {
		return nil, err
	} else if ok {
		return sendResponse{EventID: eventID}, nil
	}
	if err := h.checkRedaction(ctx, roomID, dev.UserID, target); err != nil {
		return nil, err
	}
	sent, err := h.send(ctx, roomID, api.ProtoEvent{Type: typeRedaction, Sender: dev.UserID, Content: raw, Redacts: target, Txn: txn})
	if err != nil {
		return nil, err
	}
	h.awaitSync(ctx, sent)
	return sendResponse{EventID: sent.EventID}, nil
}

// checkRedaction refuses a redaction of an event of another room, or of
// another user's event by a user without the redact power level. An event
// this server does not have is left to the roomserver.
func (h *Handlers) checkRedaction(ctx context.Context, roomID, sender, target string) error {
	ev, err := h.rooms.Event(ctx, target)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read redacted event: %w", err)
	}
	if ev.RoomID != roomID {
		return httputil.InvalidParam("the event is not in this room")
	}
	e, err := events.Parse(ev)
	if err != nil {
		return err
	}
	if e.Sender == sender {
		return nil
	}
	p, err := h.powerOf(ctx, roomID, sender)
	if errors.Is(err, api.ErrRoomNotFound) {
		return errNotInRoom()
	}
	if err != nil {
		return err
	}
	if !p.atLeast(p.levels.Redact) {
		return httputil.Forbidden("you may not redact other users' events")
	}
	return nil
}
