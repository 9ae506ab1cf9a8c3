package directory

import (
	"context"
	"errors"
	"fmt"

	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// MoveRoom moves a room's place in the directory to its replacement when
// userID upgrades it (the spec's "moves any local aliases to the new
// room"): every local alias of oldRoomID then points to newRoomID, made by
// userID (as Synapse records it, so that the upgrader may manage them),
// and newRoomID is published in place of oldRoomID when that one was.
// The room API calls it once the new room exists; permissions were
// checked by then (the power to upgrade).
//
// Each alias moves by a delete and an insert: an alias deleted or
// re-created by someone else in between is left to them.
func (h *Handlers) MoveRoom(ctx context.Context, oldRoomID, newRoomID, userID string) error {
	aliases, err := h.rooms.AliasesOf(ctx, oldRoomID)
	if err != nil {
		return fmt.Errorf("list aliases: %w", err)
	}
	for _, alias := range aliases {
		a, err := h.rooms.ResolveAlias(ctx, alias)
		if errors.Is(err, api.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("resolve alias: %w", err)
		}
		if a.RoomID != oldRoomID {
			continue
		}
		if err := h.rooms.DeleteAlias(ctx, a); errors.Is(err, api.ErrNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("delete alias: %w", err)
		}
		if err := h.rooms.SetAlias(ctx, alias, newRoomID, userID); err != nil && !errors.Is(err, api.ErrAliasExists) {
			return fmt.Errorf("set alias: %w", err)
		}
	}
	public, err := h.rooms.Visibility(ctx, oldRoomID)
	if err != nil {
		return fmt.Errorf("read room visibility: %w", err)
	}
	if !public {
		return nil
	}
	if err := h.rooms.SetVisibility(ctx, newRoomID, true); err != nil {
		return fmt.Errorf("publish room: %w", err)
	}
	if err := h.rooms.SetVisibility(ctx, oldRoomID, false); err != nil {
		return fmt.Errorf("withdraw room: %w", err)
	}
	return nil
}
