package roomserver

import (
	"context"

	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// SetAlias implements api.Directory.
func (c *Component) SetAlias(ctx context.Context, alias, roomID, creator string) error {
	return c.directory.SetAlias(ctx, alias, roomID, creator)
}

// ResolveAlias implements api.Directory.
func (c *Component) ResolveAlias(ctx context.Context, alias string) (api.RoomAlias, error) {
	return c.directory.ResolveAlias(ctx, alias)
}

// DeleteAlias implements api.Directory.
func (c *Component) DeleteAlias(ctx context.Context, a api.RoomAlias) error {
	return c.directory.DeleteAlias(ctx, a)
}

// AliasesOf implements api.Directory.
func (c *Component) AliasesOf(ctx context.Context, roomID string) ([]string, error) {
	return c.directory.AliasesOf(ctx, roomID)
}

// SetVisibility implements api.Directory.
func (c *Component) SetVisibility(ctx context.Context, roomID string, public bool) error {
	return c.directory.SetVisibility(ctx, roomID, public)
}

// Visibility implements api.Directory.
func (c *Component) Visibility(ctx context.Context, roomID string) (bool, error) {
	return c.directory.Visibility(ctx, roomID)
}

// PublicRooms implements api.Directory.
func (c *Component) PublicRooms(ctx context.Context, q api.PublicRoomsQuery) (api.PublicRoomsPage, error) {
	return c.directory.PublicRooms(ctx, q)
}

var _ api.Directory = (*Component)(nil)
