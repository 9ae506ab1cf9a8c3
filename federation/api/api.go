// Package api is the federation component's face to the other
// components: what the client API asks of it (joining rooms of other
// servers) and its errors, and nothing else.
package api

import (
	"context"
	"encoding/json"
	"errors"
)

// RemoteJoiner joins local users to rooms this server is not in.
type RemoteJoiner interface {
	// JoinRemote joins userID (a local user) to roomID through the first
	// of servers that lets it, and returns once the room, with its state
	// before the join, is in the roomserver. content is the join event's
	// content besides membership (reason, display name...).
	JoinRemote(ctx context.Context, roomID, userID string, servers []string, content map[string]any) error
}

// RemoteInviter invites users of other servers.
type RemoteInviter interface {
	// InviteRemote invites target (a user of another server) to roomID
	// on behalf of sender (a local user); content is the invite's content
	// besides membership (reason, is_direct). The auth rules' refusal is a
	// roomserver/api NotAllowedError.
	InviteRemote(ctx context.Context, roomID, sender, target string, content map[string]any) error
}

// RemoteLeaver rejects invites to, and withdraws knocks on, rooms this
// server is not in.
type RemoteLeaver interface {
	// LeaveRemote makes userID (a local user invited to, or knocking on,
	// roomID, which this server is not in) leave it through the first of
	// servers that lets it.
	LeaveRemote(ctx context.Context, roomID, userID string, servers []string) error
}

// RemoteKnocker knocks on rooms this server is not in.
type RemoteKnocker interface {
	// KnockRemote makes userID (a local user) knock on roomID through the
	// first of servers that lets it (make_knock, send_knock), and keeps
	// the knock with the room's stripped state the resident server gave,
	// so that the user's /sync shows it. content is the knock's content
	// besides membership (reason).
	KnockRemote(ctx context.Context, roomID, userID string, servers []string, content map[string]any) error
}

// RoomPolicy is the federation policy on rooms (federation.allowed_servers).
type RoomPolicy interface {
	// CheckRoomServers returns an error wrapping ErrServerNotAllowed when
	// a member of roomID (a room this server is in) belongs to a server
	// this one does not federate with: local users may then not join,
	// invite or knock there. Nil in an open federation.
	CheckRoomServers(ctx context.Context, roomID string) error
}

// RemoteSpaces reads the space hierarchy of rooms this server is not in.
type RemoteSpaces interface {
	// RemoteHierarchy asks the first of servers that answers for the
	// summary of roomID and of its children (federation /hierarchy).
	RemoteHierarchy(ctx context.Context, roomID string, servers []string, suggestedOnly bool) (Hierarchy, error)
}

// Hierarchy is another server's answer about a room of a space: its
// summary (a public room entry with its children_state), the summaries
// of the children it could give, and the children it would not.
type Hierarchy struct {
	Room                 json.RawMessage   `json:"room"`
	Children             []json.RawMessage `json:"children"`
	InaccessibleChildren []string          `json:"inaccessible_children"`
}

// RemoteHistory fetches the history of rooms from the other servers in
// them.
type RemoteHistory interface {
	// BackfillRoom asks the other servers in roomID for up to limit
	// events before the oldest one this server has, and has the
	// roomserver place them at the start of the timeline. It returns how
	// many it placed: 0 when the room's history is whole here (it starts
	// with m.room.create) or no server had more.
	BackfillRoom(ctx context.Context, roomID string, limit int) (int, error)
}

// RemoteDirectory resolves the room aliases of other servers.
type RemoteDirectory interface {
	// QueryRoomAlias asks the alias's server which room the alias points
	// to, and through which servers it can be joined (federation
	// /query/directory). ErrNotFound when that server does not know the
	// alias, ErrNoServer when this one does not federate with it.
	QueryRoomAlias(ctx context.Context, alias string) (RoomAlias, error)
	// QueryPublicRooms asks server for a page of its public room list
	// (federation /publicRooms). ErrNoServer when this server does not
	// federate with it.
	QueryPublicRooms(ctx context.Context, server string, q PublicRoomsQuery) (PublicRoomsPage, error)
}

// PublicRoomsQuery asks another server for a page of its public room
// list.
type PublicRoomsQuery struct {
	Limit      int
	Since      string
	SearchTerm string
	// RoomTypes filters by room type when not nil; "" stands for rooms
	// without a type (null in the request).
	RoomTypes []string
}

// PublicRoomsPage is another server's page of its public room list, its
// entries as it gave them.
type PublicRoomsPage struct {
	Chunk     []json.RawMessage `json:"chunk"`
	NextBatch string            `json:"next_batch,omitempty"`
	PrevBatch string            `json:"prev_batch,omitempty"`
	Total     int               `json:"total_room_count_estimate"`
}

// RoomAlias is what another server answers about one of its aliases.
type RoomAlias struct {
	RoomID  string   `json:"room_id"`
	Servers []string `json:"servers"`
}

// RemoteRooms is what the client API asks of the federation component.
type RemoteRooms interface {
	RemoteDirectory
	RemoteJoiner
	RemoteInviter
	RemoteLeaver
	RemoteKnocker
	RemoteSpaces
	RemoteHistory
	RoomPolicy
}

// Sentinel errors of the federation component.
var (
	// ErrNoServer: none of the servers given could be asked (none
	// allowed by the federation policy, or only this one).
	ErrNoServer = errors.New("no server to join through")
	// ErrNotFound: the remote server does not know what it was asked
	// about (its answer was 404).
	ErrNotFound = errors.New("not found on the remote server")
	// ErrRefused: the remote server refused (its answer's status was
	// 4xx); the error's message says why.
	ErrRefused = errors.New("refused by the remote server")
	// ErrServerNotAllowed: the room has members of a server off the
	// allow-list; the error's message names them.
	ErrServerNotAllowed = errors.New("the room has members of servers this server does not federate with")
)
