package api

import (
	"context"
	"errors"

	"github.com/matrix-gouv/homeserver/internal/spacetree"
)

// RoomAlias is a local room alias and what it points to.
type RoomAlias struct {
	// Alias is the full alias, #localpart:server.
	Alias string `json:"alias"`
	// RoomID is the room the alias points to.
	RoomID string `json:"room_id"`
	// Creator is the user who created the alias.
	Creator string `json:"creator"`
}

// PublicRoom is one entry of the public room directory, in the JSON of the
// spec's PublishedRoomsChunk, computed from the room's current state: the
// same description a space hierarchy gives of a room.
type PublicRoom = spacetree.Entry

// PublicRoomsQuery asks for one page of the public room directory.
type PublicRoomsQuery struct {
	// SearchTerm keeps the rooms whose name, topic or canonical alias
	// contains it, case-insensitively; empty keeps all.
	SearchTerm string `json:"search_term,omitempty"`
	// RoomTypes keeps the rooms of these types, "" standing for rooms
	// without a type (the spec's null); empty keeps all.
	RoomTypes []string `json:"room_types,omitempty"`
	// Since is a NextBatch or PrevBatch of an earlier page; empty for
	// the first page.
	Since string `json:"since,omitempty"`
	// Limit caps the page's size; 0 means no limit.
	Limit int `json:"limit,omitempty"`
}

// PublicRoomsPage is a page of the public room directory, sorted by
// number of joined members (most first), then room id.
type PublicRoomsPage struct {
	Chunk []PublicRoom `json:"chunk"`
	// NextBatch and PrevBatch are opaque tokens for the pages after and
	// before this one; empty when there is none.
	NextBatch string `json:"next_batch,omitempty"`
	PrevBatch string `json:"prev_batch,omitempty"`
	// Total is the number of rooms matching the query, on all pages.
	Total int `json:"total"`
}

// Directory holds the room directory: local room aliases and the rooms
// published in the public room list. Like Reader, it answers what is;
// who may change what is the caller's decision.
type Directory interface {
	// SetAlias points a new local alias at roomID. It returns
	// ErrAliasExists when the alias is taken (by any room) and
	// ErrRoomNotFound when this server knows no such room.
	SetAlias(ctx context.Context, alias, roomID, creator string) error
	// ResolveAlias returns what a local alias points to, or ErrNotFound.
	ResolveAlias(ctx context.Context, alias string) (RoomAlias, error)
	// DeleteAlias deletes a.Alias if it still points to a.RoomID and was
	// made by a.Creator (what an earlier ResolveAlias returned, so that a
	// permission checked on it holds); ErrNotFound otherwise.
	DeleteAlias(ctx context.Context, a RoomAlias) error
	// AliasesOf returns the local aliases pointing to roomID, sorted;
	// none for an unknown room.
	AliasesOf(ctx context.Context, roomID string) ([]string, error)
	// SetVisibility publishes roomID in the public room directory, or
	// withdraws it; ErrRoomNotFound for an unknown room.
	SetVisibility(ctx context.Context, roomID string, public bool) error
	// Visibility reports whether roomID is published; ErrRoomNotFound
	// for an unknown room.
	Visibility(ctx context.Context, roomID string) (public bool, err error)
	// PublicRooms returns a page of the published rooms that have at
	// least one joined member. ErrBadPageToken: q.Since is not a token
	// PublicRooms made.
	PublicRooms(ctx context.Context, q PublicRoomsQuery) (PublicRoomsPage, error)
}

// Sentinel errors of the directory.
var (
	// ErrAliasExists: the alias already points to a room.
	ErrAliasExists = errors.New("room alias already exists")
	// ErrBadPageToken: a paging token that this server did not make.
	ErrBadPageToken = errors.New("invalid paging token")
)
