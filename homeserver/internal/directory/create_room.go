package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// What createRoom asks of the directory: room_alias_name and visibility.
// The room API calls NewRoomAlias before creating the room (so that a
// taken alias creates nothing) and PublishNewRoom after.

// NewRoomAlias checks createRoom's room_alias_name and returns the full
// alias, #localpart:this.server. A localpart with whitespace or ":" is 400
// M_INVALID_PARAM; an alias already taken is 400 M_ROOM_IN_USE, as the
// spec says.
func (h *Handlers) NewRoomAlias(ctx context.Context, localpart string) (string, error) {
	if strings.ContainsFunc(localpart, func(r rune) bool { return r == ':' || unicode.IsSpace(r) }) {
		return "", httputil.InvalidParam("room_alias_name may not contain whitespace or ':'")
	}
	alias := "#" + localpart + ":" + string(h.serverName)
	if err := h.localAlias(alias); err != nil {
		return "", err
	}
	if err := h.checkAliasNotReserved(ctx, alias); err != nil {
		return "", err
	}
	_, err := h.rooms.ResolveAlias(ctx, alias)
	if err == nil {
		return "", roomInUse(alias)
	}
	if !errors.Is(err, api.ErrNotFound) {
		return "", fmt.Errorf("resolve alias: %w", err)
	}
	return alias, nil
}

// PublishNewRoom gives a room created by creator the alias NewRoomAlias
// returned (none when alias is empty) and publishes it in the directory
// when public. An alias taken since NewRoomAlias checked it is 400
// M_ROOM_IN_USE (the room exists by then: the caller may say so).
func (h *Handlers) PublishNewRoom(ctx context.Context, roomID, creator, alias string, public bool) error {
	if alias != "" {
		if err := h.rooms.SetAlias(ctx, alias, roomID, creator); errors.Is(err, api.ErrAliasExists) {
			return roomInUse(alias)
		} else if err != nil {
			return fmt.Errorf("set alias: %w", err)
		}
	}
	if public {
		if err := h.rooms.SetVisibility(ctx, roomID, true); err != nil {
			return fmt.Errorf("publish room: %w", err)
		}
	}
	return nil
}

func roomInUse(alias string) error {
	return httputil.Errorf(httputil.CodeRoomInUse, "room alias %s is already taken", alias)
}
