package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
)

// Typing notifications and read receipts between servers: a local user's
// go to the servers with members in the room, as m.typing and m.receipt
// EDUs on the outbound queue; another server's are taken when the server
// speaks for its own user in a room it is in. Presence goes to the
// servers sharing any room with the user, and is taken from a server for
// its own users.

// EDU types of typing, receipts and presence.
const (
	eduTyping   = "m.typing"
	eduReceipt  = "m.receipt"
	eduPresence = "m.presence"
)

// presenceEDU is the content of an m.presence EDU.
type presenceEDU struct {
	Push []presenceUpdate `json:"push"`
}

// presenceUpdate is one user's presence in an m.presence EDU.
type presenceUpdate struct {
	UserID          string `json:"user_id"`
	Presence        string `json:"presence"`
	StatusMsg       string `json:"status_msg,omitempty"`
	LastActiveAgo   int64  `json:"last_active_ago"`
	CurrentlyActive bool   `json:"currently_active"`
}

// typingEDU is the content of an m.typing EDU.
type typingEDU struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
	Typing bool   `json:"typing"`
}

// receiptData is one user's receipt in an m.receipt EDU.
type receiptData struct {
	EventIDs []string `json:"event_ids"`
	Data     struct {
		TS       int64  `json:"ts"`
		ThreadID string `json:"thread_id,omitempty"`
	} `json:"data"`
}

// roomDestinations returns the allowed servers, other than this one, with
// members joined to roomID.
func (c *Component) roomDestinations(ctx context.Context, roomID string) ([]string, error) {
	servers, err := c.rooms.JoinedServers(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("servers of %s: %w", roomID, err)
	}
	var out []string
	for _, s := range servers {
		if s != string(c.serverName) && c.cfg.ServerAllowed(s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// queueRoomEDU queues an EDU of roomID for the servers in it; id is
// unique to the EDU.
func (c *Component) queueRoomEDU(ctx context.Context, roomID, typ, id string, content any) error {
	if c.sender == nil {
		return nil
	}
	dests, err := c.roomDestinations(ctx, roomID)
	if err != nil {
		return err
	}
	return c.queueEDUs(ctx, dests, typ, id, content)
}

// queueUserEDU queues an EDU about userID for the servers sharing a room
// with them; id is unique to the EDU.
func (c *Component) queueUserEDU(ctx context.Context, userID, typ, id string, content any) error {
	if c.sender == nil {
		return nil
	}
	dests, err := c.userDestinations(ctx, userID)
	if err != nil {
		return err
	}
	return c.queueEDUs(ctx, dests, typ, id, content)
}

// queueEDUs queues one EDU for each of dests.
func (c *Component) queueEDUs(ctx context.Context, dests []string, typ, id string, content any) error {
	if len(dests) == 0 {
		return nil
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	for _, d := range dests {
		edu := gomatrixserverlib.EDU{Type: typ, Origin: string(c.serverName), Destination: d, Content: raw}
		if err := c.sender.queueEDU(ctx, d, id, edu); err != nil {
			return err
		}
	}
	return nil
}

// SendTyping implements hsapi.EDUSender.
func (c *Component) SendTyping(ctx context.Context, roomID, userID string, typing bool, _ int64) error {
	id := fmt.Sprintf("typing %s %s %d", roomID, userID, c.now().UnixNano())
	return c.queueRoomEDU(ctx, roomID, eduTyping, id, typingEDU{RoomID: roomID, UserID: userID, Typing: typing})
}

// SendReceipt implements hsapi.EDUSender.
func (c *Component) SendReceipt(ctx context.Context, roomID, userID, typ, threadID, eventID string, ts int64) error {
	var r receiptData
	r.EventIDs = []string{eventID}
	r.Data.TS, r.Data.ThreadID = ts, threadID
	content := map[string]map[string]map[string]receiptData{roomID: {typ: {userID: r}}}
	return c.queueRoomEDU(ctx, roomID, eduReceipt, fmt.Sprintf("receipt %s %s %s %s", roomID, userID, typ, eventID), content)
}

// originInRoom reports whether origin has members joined to roomID and
// the room's server ACL lets it take part.
func (c *Component) originInRoom(ctx context.Context, origin, roomID string) bool {
	servers, err := c.rooms.JoinedServers(ctx, roomID)
	if err != nil || !slices.Contains(servers, origin) {
		return false
	}
	ok, err := c.aclAllows(ctx, roomID, origin)
	return err == nil && ok
}

// receiveTyping takes an inbound m.typing EDU.
func (c *Component) receiveTyping(ctx context.Context, origin string, content json.RawMessage) error {
	var t typingEDU
	if err := json.Unmarshal(content, &t); err != nil || t.RoomID == "" || serverOf(t.UserID) != origin {
		return nil
	}
	if c.edus == nil || !c.originInRoom(ctx, origin, t.RoomID) {
		return nil
	}
	return c.edus.ReceiveTyping(ctx, t.RoomID, t.UserID, t.Typing)
}

// receiveReceipts takes an inbound m.receipt EDU: the receipts of the
// origin's own users, in rooms the origin is in.
func (c *Component) receiveReceipts(ctx context.Context, origin string, content json.RawMessage) error {
	var rooms map[string]map[string]map[string]receiptData
	if err := json.Unmarshal(content, &rooms); err != nil || c.edus == nil {
		return nil
	}
	for roomID, types := range rooms {
		if !c.originInRoom(ctx, origin, roomID) {
			continue
		}
		for typ, users := range types {
			for userID, r := range users {
				if serverOf(userID) != origin {
					continue
				}
				for _, eventID := range r.EventIDs {
					if err := c.edus.ReceiveReceipt(ctx, roomID, userID, typ, r.Data.ThreadID, eventID, r.Data.TS); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// SendPresence implements hsapi.EDUSender: p goes to every allowed server
// with members in a room the user is joined to.
func (c *Component) SendPresence(ctx context.Context, p hsapi.Presence) error {
	content := presenceEDU{Push: []presenceUpdate{{UserID: p.UserID, Presence: p.State, StatusMsg: p.StatusMsg,
		LastActiveAgo: p.LastActiveAgoMS, CurrentlyActive: p.CurrentlyActive}}}
	return c.queueUserEDU(ctx, p.UserID, eduPresence, fmt.Sprintf("presence %s %d", p.UserID, c.now().UnixNano()), content)
}

// receivePresence takes an m.presence EDU's updates of origin's own users.
func (c *Component) receivePresence(ctx context.Context, origin string, content json.RawMessage) error {
	var e presenceEDU
	if json.Unmarshal(content, &e) != nil {
		return nil
	}
	for _, u := range e.Push {
		switch u.Presence {
		case "online", "unavailable", "offline":
		default:
			continue
		}
		if serverOf(u.UserID) != origin {
			c.log.WithField(fieldOrigin, origin).Info("dropping presence of a user of another server")
			continue
		}
		if err := c.edus.ReceivePresence(ctx, hsapi.Presence{UserID: u.UserID, State: u.Presence, StatusMsg: u.StatusMsg,
			LastActiveAgoMS: max(u.LastActiveAgo, 0), CurrentlyActive: u.CurrentlyActive}); err != nil {
			return err
		}
	}
	return nil
}
