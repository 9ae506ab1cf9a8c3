// Package api is the federation component's face to the other
// components: what the client API asks of it (joining rooms of other
// servers) and its errors, and nothing else.
package api

import (
	"context"
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

// RemoteLeaver rejects invites to rooms this server is not in.
type RemoteLeaver interface {
	// LeaveRemote makes userID (a local user invited to roomID, which
	// this server is not in) leave it through the first of servers that
	// lets it.
	LeaveRemote(ctx context.Context, roomID, userID string, servers []string) error
}

// RemoteRooms is what the client API asks of the federation component.
type RemoteRooms interface {
	RemoteJoiner
	RemoteInviter
	RemoteLeaver
}

// Sentinel errors of the federation component.
var (
	// ErrNoServer: none of the servers given could be asked (none
	// allowed by the federation policy, or only this one).
	ErrNoServer = errors.New("no server to join through")
	// ErrRefused: the remote server refused (its answer's status was
	// 4xx); the error's message says why.
	ErrRefused = errors.New("refused by the remote server")
)
