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

// roomPDUs are checked PDUs of one room, in the order received.
type roomPDUs struct {
	v    gomatrixserverlib.IRoomVersion
	pdus []gomatrixserverlib.PDU
}

// inputRoom gives a room's checked PDUs to the roomserver in one call,
// after fetching the prev events missing (those among the PDUs count as
// known) and asking the room's policy server for the signatures they
// lack (policyserver.go), and returns the per-PDU errors by event id (""
// when accepted). Past a PDU the roomserver finds invalid, the rest go
// one by one.
func (c *Component) inputRoom(ctx context.Context, origin spec.ServerName, g *roomPDUs) (map[string]string, error) {
	pending := map[string]bool{}
	down := map[spec.ServerName]bool{}
	raws := make([]json.RawMessage, len(g.pdus))
	gaps, anyGap := map[string]bool{}, false
	for i, pdu := range g.pdus {
		if err := c.fetchMissing(ctx, origin, g.v, pdu, pending, down); err != nil {
			return nil, err
		}
		pdu, err := c.policySigned(ctx, pdu, down)
		if err != nil {
			return nil, err
		}
		g.pdus[i] = pdu
		gap, err := c.lacksState(ctx, pdu, pending)
		if err != nil {
			return nil, err
		}
		gaps[pdu.EventID()], anyGap = gap, anyGap || gap
		pending[pdu.EventID()] = true
		raws[i] = pdu.JSON()
	}
	msgs := make(map[string]string, len(g.pdus))
	if anyGap {
		// A gap the missing events did not close (rare): one by one, the
		// events after it with the state the origin gives.
		for _, pdu := range g.pdus {
			var err error
			if gaps[pdu.EventID()] {
				msgs[pdu.EventID()], err = c.inputWithState(ctx, origin, g.v, pdu)
			} else {
				msgs[pdu.EventID()], err = c.inputOne(ctx, pdu)
			}
			if err != nil {
				return nil, err
			}
		}
		return msgs, nil
	}
	res, err := c.rooms.InputEvents(ctx, g.pdus[0].RoomID().String(), raws)
	if err != nil && !errors.Is(err, rsapi.ErrInvalidEvent) {
		return nil, err
	}
	for i, r := range res {
		msgs[g.pdus[i].EventID()] = inputMessage(r)
	}
	if err != nil {
		msgs[g.pdus[len(res)].EventID()] = err.Error()
		for _, pdu := range g.pdus[len(res)+1:] {
			if msgs[pdu.EventID()], err = c.inputOne(ctx, pdu); err != nil {
				return nil, err
			}
		}
	}
	return msgs, nil
}

// lacksState reports whether pdu has a prev event that is neither among
// known (events given to the roomserver with it) nor here with its state
// (unknown, or an outlier): the roomserver cannot work out the state
// before it alone.
func (c *Component) lacksState(ctx context.Context, pdu gomatrixserverlib.PDU, known map[string]bool) (bool, error) {
	var ask []string
	for _, id := range pdu.PrevEventIDs() {
		if !known[id] {
			ask = append(ask, id)
		}
	}
	if len(ask) == 0 {
		return false, nil
	}
	stateless, err := c.rooms.StatelessEvents(ctx, ask)
	if err != nil {
		return false, fmt.Errorf("prev events of %s: %w", pdu.EventID(), err)
	}
	return len(stateless) > 0, nil
}

// inputWithState gives the roomserver a checked PDU whose prev events
// are not here with their state, with the state before it that origin
// gives (/state_ids, and /state for the events not here), and returns
// what became of it as a per-PDU error.
func (c *Component) inputWithState(ctx context.Context, origin spec.ServerName, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU) (string, error) {
	roomID := pdu.RoomID().String()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ids, outliers, err := c.stateBefore(ctx, v, roomID, origin, pdu.EventID())
	if err != nil {
		c.log.WithError(err).WithFields(map[string]any{fieldOrigin: origin, fieldEventID: pdu.EventID()}).Info("state before an event after a gap")
		return "prev events unknown and the state before the event unavailable", nil
	}
	res, err := c.rooms.InputWithState(ctx, rsapi.StateInputRequest{RoomID: roomID, Event: pdu.JSON(), StateBefore: ids, Outliers: outliers})
	switch {
	case errors.Is(err, rsapi.ErrInvalidEvent):
		return err.Error(), nil
	case err != nil:
		return "", err
	}
	return inputMessage(res), nil
}

// inputMessage is the per-PDU error of an input result.
func inputMessage(r rsapi.InputResult) string {
	if r.Rejected != "" {
		return "rejected: " + r.Rejected
	}
	return ""
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
	}
	return inputMessage(res[0]), nil
}
