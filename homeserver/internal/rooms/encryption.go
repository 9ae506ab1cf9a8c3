package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// The encryption policy (config.Encryption): new private rooms encrypted by
// default, and encryption that cannot be turned off. The room auth rules
// let anyone with enough power replace or redact m.room.encryption, which
// would make clients send the next messages in clear; this package refuses
// both, for local users.

const (
	typeEncryption = "m.room.encryption"
	// algMegolm is the room encryption algorithm clients use.
	algMegolm = "m.megolm.v1.aes-sha2"
)

// newRoomEncryption returns the m.room.encryption content createRoom adds
// to a new room of the preset, nil when none (the policy is "optional",
// the room is not private, or initial_state has its own).
func (h *Handlers) newRoomEncryption(preset string, initial []initialStateEvent) (json.RawMessage, error) {
	policy := h.cfg.Encryption.PrivateRooms
	private := preset == "private_chat" || preset == "trusted_private_chat"
	for _, s := range initial {
		if s.Type == typeJoinRules && s.StateKey == "" {
			var c struct {
				JoinRule string `json:"join_rule"`
			}
			_ = json.Unmarshal(s.Content, &c)
			private = private && c.JoinRule != "public"
		}
	}
	if !private || policy == config.PrivateRoomsOptional {
		return nil, nil
	}
	for _, s := range initial {
		if s.Type != typeEncryption || s.StateKey != "" {
			continue
		}
		if policy == config.PrivateRoomsForced && algorithmOf(s.Content) != algMegolm {
			return nil, httputil.Forbidden("this server requires private rooms to be encrypted with %s", algMegolm)
		}
		return nil, nil
	}
	return json.RawMessage(`{"algorithm":"` + algMegolm + `"}`), nil
}

// algorithmOf is the algorithm of m.room.encryption content, "" if none.
func algorithmOf(content json.RawMessage) string {
	var c struct {
		Algorithm string `json:"algorithm"`
	}
	if json.Unmarshal(content, &c) != nil {
		return ""
	}
	return c.Algorithm
}

// checkEncryptionKept refuses an event that would turn a room's encryption
// off: a new m.room.encryption of another algorithm (or none), or a
// redaction of the current one.
func (h *Handlers) checkEncryptionKept(ctx context.Context, roomID string, ev api.ProtoEvent) error {
	isEncryption := ev.Type == typeEncryption && ev.StateKey != nil && *ev.StateKey == ""
	if !isEncryption && !(ev.Type == typeRedaction && ev.Redacts != "") {
		return nil
	}
	cur, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeEncryption})
	if errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrRoomNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read room encryption: %w", err)
	}
	if !isEncryption {
		if ev.Redacts == cur.EventID {
			return httputil.Forbidden("the room's m.room.encryption event cannot be redacted: encryption cannot be turned off")
		}
		return nil
	}
	e, err := events.Parse(cur)
	if err != nil {
		return err
	}
	if old := algorithmOf(e.Content); old != "" && algorithmOf(ev.Content) != old {
		return httputil.Forbidden("this room is encrypted with %s: its encryption cannot be changed or turned off", old)
	}
	return nil
}
