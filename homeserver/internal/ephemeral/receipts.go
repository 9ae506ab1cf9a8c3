package ephemeral

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Receipt types.
const (
	receiptRead        = "m.read"
	receiptReadPrivate = "m.read.private"
	fullyRead          = "m.fully_read"
)

// Receipt serves POST /rooms/{roomID}/receipt/{receiptType}/{eventID}.
func (h *Handlers) Receipt(r *http.Request) (any, error) {
	ctx := r.Context()
	userID := auth.DeviceFrom(ctx).UserID
	roomID, typ, eventID := httputil.PathParam(r, "roomID"), httputil.PathParam(r, "receiptType"), httputil.PathParam(r, "eventID")
	var body struct {
		ThreadID *string `json:"thread_id"`
	}
	if err := httputil.DecodeJSON(r, h.MaxRequestBytes, &body); err != nil {
		return nil, err
	}
	switch typ {
	case receiptRead, receiptReadPrivate:
	case fullyRead:
		if body.ThreadID != nil {
			return nil, httputil.InvalidParam("m.fully_read cannot be threaded")
		}
	default:
		return nil, httputil.InvalidParam("receipt type must be m.read, m.read.private or m.fully_read")
	}
	thread := ""
	if body.ThreadID != nil {
		if *body.ThreadID == "" || (*body.ThreadID != "main" && (*body.ThreadID)[0] != '$') {
			return nil, httputil.InvalidParam("thread_id must be main or an event id")
		}
		thread = *body.ThreadID
	}
	if err := h.joined(ctx, roomID, userID); err != nil {
		return nil, err
	}
	if typ == fullyRead {
		return struct{}{}, h.setFullyRead(ctx, userID, roomID, eventID)
	}
	return struct{}{}, h.putReceipt(ctx, userID, roomID, typ, thread, eventID)
}

// ReadMarkers serves POST /rooms/{roomID}/read_markers.
func (h *Handlers) ReadMarkers(r *http.Request) (any, error) {
	ctx := r.Context()
	userID := auth.DeviceFrom(ctx).UserID
	roomID := httputil.PathParam(r, "roomID")
	var body struct {
		FullyRead   string `json:"m.fully_read"`
		Read        string `json:"m.read"`
		ReadPrivate string `json:"m.read.private"`
	}
	if err := httputil.DecodeJSON(r, h.MaxRequestBytes, &body); err != nil {
		return nil, err
	}
	if err := h.joined(ctx, roomID, userID); err != nil {
		return nil, err
	}
	if body.FullyRead != "" {
		if err := h.setFullyRead(ctx, userID, roomID, body.FullyRead); err != nil {
			return nil, err
		}
	}
	for typ, eventID := range map[string]string{receiptRead: body.Read, receiptReadPrivate: body.ReadPrivate} {
		if eventID == "" {
			continue
		}
		if err := h.putReceipt(ctx, userID, roomID, typ, "", eventID); err != nil {
			return nil, err
		}
	}
	return struct{}{}, nil
}

// eventInRoom returns the event eventID of roomID, 404 when there is
// none.
func (h *Handlers) eventInRoom(ctx context.Context, roomID, eventID string) (rsapi.Event, error) {
	ev, err := h.Rooms.Event(ctx, eventID)
	if errors.Is(err, rsapi.ErrNotFound) || (err == nil && ev.RoomID != roomID) {
		return rsapi.Event{}, httputil.NotFound("no such event in this room")
	}
	if err != nil {
		return rsapi.Event{}, fmt.Errorf("read event: %w", err)
	}
	return ev, nil
}

// putReceipt stores a receipt and wakes the room.
func (h *Handlers) putReceipt(ctx context.Context, userID, roomID, typ, thread, eventID string) error {
	ev, err := h.eventInRoom(ctx, roomID, eventID)
	if err != nil {
		return err
	}
	ts := h.now().UnixMilli()
	pos, err := h.Store.PutReceipt(ctx, storage.Receipt{RoomID: roomID, UserID: userID, Type: typ, ThreadID: thread,
		EventID: eventID, EventStreamPos: ev.StreamPos, TS: ts})
	if err != nil {
		return err
	}
	if h.Unread != nil && (typ == receiptRead || typ == receiptReadPrivate) {
		h.Unread.ReceiptMoved(userID, roomID)
	}
	if pos > 0 {
		h.Notifier.OnReceipt(roomID, pos)
		if h.Bridges != nil && typ != "m.read.private" {
			h.Bridges.Receipt(ctx, roomID, userID, typ, thread, eventID, ts)
		}
		if h.Federation != nil && typ == receiptRead {
			if err := h.Federation.SendReceipt(ctx, roomID, userID, typ, thread, eventID, ts); err != nil {
				h.Log.WithError(err).Warn("queue a receipt for other servers")
			}
		}
	}
	return nil
}

// setFullyRead moves the m.fully_read marker, room account data.
func (h *Handlers) setFullyRead(ctx context.Context, userID, roomID, eventID string) error {
	if _, err := h.eventInRoom(ctx, roomID, eventID); err != nil {
		return err
	}
	content, err := json.Marshal(map[string]string{"event_id": eventID})
	if err != nil {
		return err
	}
	return h.AccountData.Put(ctx, userID, roomID, fullyRead, content)
}
