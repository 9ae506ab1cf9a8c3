package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
)

// The allow-list's rule on rooms (federation.allowed_servers): this
// server's users do not enter rooms shared with servers it does not
// federate with. Local joins, invites and knocks into a room this server
// is in are refused when its joined members include such a server
// (CheckRoomServers, asked by the client API); a remote join is checked
// on the state the resident server returns, and taken back (make_leave,
// send_leave) when that state shows one. Events of those servers that an
// allowed server relays are still taken (relay.go).

// CheckRoomServers implements fedapi.RoomPolicy.
func (c *Component) CheckRoomServers(ctx context.Context, roomID string) error {
	servers, err := c.rooms.JoinedServers(ctx, roomID)
	if err != nil {
		return fmt.Errorf("servers of %s: %w", roomID, err)
	}
	return c.offList(servers)
}

// offList returns an error wrapping fedapi.ErrServerNotAllowed that names
// the servers of servers this one does not federate with, nil when there
// are none.
func (c *Component) offList(servers []string) error {
	var off []string
	for _, s := range servers {
		if s != "" && s != string(c.serverName) && !c.cfg.ServerAllowed(s) && !slices.Contains(off, s) {
			off = append(off, s)
		}
	}
	if len(off) == 0 {
		return nil
	}
	slices.Sort(off)
	return fmt.Errorf("%w: %s", fedapi.ErrServerNotAllowed, strings.Join(off, ", "))
}

// joinedServersOf returns the servers of the joined members in state
// (PDUs as JSON), and servers listed apart (servers_in_room of a
// partial-state answer).
func joinedServersOf(state [][]byte, listed []string) []string {
	servers := slices.Clone(listed)
	for _, js := range state {
		var ev struct {
			Type     string  `json:"type"`
			StateKey *string `json:"state_key"`
			Content  struct {
				Membership string `json:"membership"`
			} `json:"content"`
		}
		if json.Unmarshal(js, &ev) != nil || ev.Type != spec.MRoomMember || ev.StateKey == nil || ev.Content.Membership != spec.Join {
			continue
		}
		servers = append(servers, serverOf(*ev.StateKey))
	}
	return servers
}

var _ fedapi.RoomPolicy = (*Component)(nil)
