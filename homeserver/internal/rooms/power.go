package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// power is a user's power in a room's current state.
type power struct {
	// level is the user's power level; meaningless when infinite.
	level int64
	// infinite is set for the creators of rooms whose version gives them
	// unlimited power (room version 12).
	infinite bool
	// levels is the room's power levels content, with defaults applied.
	levels gomatrixserverlib.PowerLevelContent
}

// atLeast reports whether the user's power reaches level.
func (p power) atLeast(level int64) bool { return p.infinite || p.level >= level }

// powerOf returns userID's power in roomID's current state, per the room
// version's rules: in version 12 the creators (the create event's sender
// and additional_creators) have infinite power; before, power comes from
// m.room.power_levels, or, without one, 100 for the creator and 0 for
// everyone else.
func (h *Handlers) powerOf(ctx context.Context, roomID, userID string) (power, error) {
	createEv, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeCreate})
	if err != nil {
		return power{}, fmt.Errorf("read create event: %w", err)
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(createEv.RoomVersion))
	if err != nil {
		return power{}, fmt.Errorf("room version of %s: %w", roomID, err)
	}
	create, err := events.Parse(createEv)
	if err != nil {
		return power{}, err
	}
	var cc struct {
		Creator            string   `json:"creator"`
		AdditionalCreators []string `json:"additional_creators"`
	}
	_ = json.Unmarshal(create.Content, &cc)
	if v.PrivilegedCreators() {
		if userID == create.Sender {
			return power{infinite: true}, nil
		}
		for _, c := range cc.AdditionalCreators {
			if c == userID {
				return power{infinite: true}, nil
			}
		}
	}
	plEv, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typePowerLevels})
	if errors.Is(err, api.ErrNotFound) {
		var p power
		p.levels.Defaults()
		creator := cc.Creator
		if creator == "" {
			creator = create.Sender
		}
		if userID == creator && !v.PrivilegedCreators() {
			p.level = 100
		}
		return p, nil
	}
	if err != nil {
		return power{}, fmt.Errorf("read power levels: %w", err)
	}
	pdu, err := plEv.PDU()
	if err != nil {
		return power{}, err
	}
	levels, err := gomatrixserverlib.NewPowerLevelContentFromEvent(pdu)
	if err != nil {
		return power{}, fmt.Errorf("parse power levels of %s: %w", roomID, err)
	}
	return power{level: levels.UserLevel(spec.SenderID(userID)), levels: levels}, nil
}
