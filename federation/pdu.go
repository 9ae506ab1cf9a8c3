package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// maxPrevEvents is the most prev_events a PDU may have (spec, PDUs).
const maxPrevEvents = 20

// userIDForSender maps a sender to a user id: this server runs no room
// version with pseudonymous sender ids.
func userIDForSender(_ spec.RoomID, senderID spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(senderID), true)
}

// errPDU is a PDU that fails the checks of this component; its message
// is the per-PDU error returned to the sender.
type errPDU struct{ reason string }

func (e *errPDU) Error() string { return e.reason }

// checkPDU runs the spec's first checks on a received PDU ("Checks
// performed on receipt of a PDU", steps 1 to 3): a valid event of the
// room's version (parsing it also checks the content hash, and redacts
// the event when it does not match), at most 20 prev_events, and valid
// signatures of the servers that must sign it. The auth checks are the
// roomserver's. The event returned is the one to store (redacted when
// its hash did not match).
func (c *Component) checkPDU(ctx context.Context, v gomatrixserverlib.IRoomVersion, raw json.RawMessage) (gomatrixserverlib.PDU, error) {
	pdu, err := c.parsePDU(v, raw)
	if err != nil {
		return pdu, err
	}
	return pdu, c.checkSignatures(ctx, pdu)
}

// parsePDU is checkPDU's format checks alone.
func (c *Component) parsePDU(v gomatrixserverlib.IRoomVersion, raw json.RawMessage) (gomatrixserverlib.PDU, error) {
	if len(raw) > rsapi.MaxEventBytes {
		return nil, &errPDU{"event too large"}
	}
	pdu, err := v.NewEventFromUntrustedJSON(raw)
	if err != nil {
		return nil, &errPDU{fmt.Sprintf("invalid event: %v", err)}
	}
	if len(pdu.PrevEventIDs()) > maxPrevEvents {
		return pdu, &errPDU{"more than 20 prev_events"}
	}
	if pdu.Redacted() {
		c.log.WithField(fieldEventID, pdu.EventID()).Warn("content hash mismatch: event redacted")
	}
	return pdu, nil
}

// checkSignatures is checkPDU's signature check alone: the servers the
// spec requires have signed the event (the sender's; for invites also
// the invitee's, so an invite is checked once countersigned).
func (c *Component) checkSignatures(ctx context.Context, pdu gomatrixserverlib.PDU) error {
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, pdu, c.keyRing, userIDForSender); err != nil {
		return &errPDU{fmt.Sprintf("signature check failed: %v", err)}
	}
	return nil
}

// roomVersionOf returns the version of a room this server knows.
func (c *Component) roomVersionOf(ctx context.Context, roomID string) (gomatrixserverlib.IRoomVersion, error) {
	ver, err := c.rooms.RoomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(ver))
	if err != nil {
		return nil, fmt.Errorf("room %s: %w", roomID, rsapi.ErrUnsupportedVersion)
	}
	return v, nil
}

// inputOne gives one checked PDU to the roomserver and returns what
// became of it, as a per-PDU error ("" when accepted).
func (c *Component) inputOne(ctx context.Context, pdu gomatrixserverlib.PDU) (string, error) {
	res, err := c.rooms.InputEvents(ctx, pdu.RoomID().String(), []json.RawMessage{pdu.JSON()})
	switch {
	case errors.Is(err, rsapi.ErrInvalidEvent):
		return err.Error(), nil
	case err != nil:
		return "", err
	case len(res) != 1:
		return "", fmt.Errorf("input event %s: %d results", pdu.EventID(), len(res))
	case res[0].Rejected != "":
		return "rejected: " + res[0].Rejected, nil
	}
	return "", nil
}
