package ephemeral

import (
	"context"
	"errors"
	"time"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// remoteTypingTimeout is how long another server's user shows as typing
// without a new m.typing EDU (the EDU carries no timeout; Synapse's).
const remoteTypingTimeout = 30 * time.Second

// ReceiveTyping records another server's user's typing (an m.typing EDU).
func (h *Handlers) ReceiveTyping(_ context.Context, roomID, userID string, typing bool) error {
	h.Typing.Set(roomID, userID, typing, remoteTypingTimeout)
	return nil
}

// ReceiveReceipt records another server's user's public receipt (an
// m.receipt EDU). A receipt for an event this server does not have is
// dropped.
func (h *Handlers) ReceiveReceipt(ctx context.Context, roomID, userID, typ, thread, eventID string, ts int64) error {
	if typ != receiptRead {
		// Only public read receipts cross servers.
		return nil
	}
	ev, err := h.Rooms.Event(ctx, eventID)
	if errors.Is(err, rsapi.ErrNotFound) || (err == nil && ev.RoomID != roomID) {
		return nil
	}
	if err != nil {
		return err
	}
	pos, err := h.Store.PutReceipt(ctx, storage.Receipt{RoomID: roomID, UserID: userID, Type: typ, ThreadID: thread,
		EventID: eventID, EventStreamPos: ev.StreamPos, TS: ts})
	if err != nil {
		return err
	}
	if pos > 0 {
		h.Notifier.OnReceipt(roomID, pos)
	}
	return nil
}

// ReceivePresence records another server's user's presence (an
// m.presence EDU) and wakes the local users who share a room with them.
func (h *Handlers) ReceivePresence(ctx context.Context, p hsapi.Presence) error {
	if !h.Presence {
		return nil
	}
	pos, err := h.Store.PutPresence(ctx, storage.Presence{UserID: p.UserID, State: p.State, StatusMsg: p.StatusMsg,
		LastActiveTS: h.now().Add(-time.Duration(p.LastActiveAgoMS) * time.Millisecond).UnixMilli()})
	if err != nil {
		return err
	}
	rooms, err := h.Store.JoinedRoomsOf(ctx, p.UserID)
	if err != nil {
		return err
	}
	h.Notifier.OnRemotePresence(rooms, pos)
	return nil
}
