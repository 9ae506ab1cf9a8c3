// Package directory serves the client-server room directory: room aliases
// (create, resolve, delete, list per room; aliases.go), the check of
// m.room.canonical_alias events that the state endpoints call, and the
// public room list with each room's visibility in it (public_rooms.go).
//
// It sits in the homeserver component above roomserver/api: aliases and
// listings are the roomserver's (api.Directory), and this package decides
// who may change them: anyone in a room may give it an alias; the alias's
// creator, a member with power to send m.room.canonical_alias, or a server
// admin may delete one; publishing takes that same power (or admin).
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Roomserver is what the directory endpoints ask of the roomserver: its
// directory, and the current state and memberships that permissions are
// decided on.
type Roomserver interface {
	api.Directory
	CurrentStateEvent(ctx context.Context, roomID string, key api.StateKey) (api.Event, error)
	Membership(ctx context.Context, roomID, userID string) (membership string, pos int64, err error)
}

// AliasQuerier asks application services about aliases in their
// namespaces that this server does not know.
type AliasQuerier interface {
	QueryAlias(ctx context.Context, alias string) (bool, error)
}

// Deps is what the directory handlers need.
type Deps struct {
	Global *config.Global
	Config *config.Client
	Rooms  Roomserver
	// AppServices reserve their exclusive alias namespaces. Nil: none.
	AppServices *config.AppServices
	// Bridges are asked about unknown aliases. Nil: nobody is.
	Bridges AliasQuerier
	// Remote resolves other servers' aliases. Nil (no federation): they
	// are not found.
	Remote fedapi.RemoteDirectory
	Log    *logrus.Entry
}

// Handlers serves the directory endpoints.
type Handlers struct {
	serverName  spec.ServerName
	cfg         *config.Client
	rooms       Roomserver
	appServices *config.AppServices
	bridges     AliasQuerier
	remote      fedapi.RemoteDirectory
	log         *logrus.Entry
}

// New returns the directory handlers.
func New(d Deps) *Handlers {
	return &Handlers{serverName: spec.ServerName(d.Global.ServerName), cfg: d.Config, rooms: d.Rooms,
		appServices: d.AppServices, bridges: d.Bridges, remote: d.Remote, log: d.Log}
}

// Event types and values the package reads.
const (
	typeCreate            = "m.room.create"
	typePowerLevels       = "m.room.power_levels"
	typeCanonicalAlias    = "m.room.canonical_alias"
	typeHistoryVisibility = "m.room.history_visibility"
	membershipJoin        = "join"
)

// eventContent returns the content of a current state event, nil when the
// room has no such event.
func (h *Handlers) eventContent(ctx context.Context, roomID, typ string) (*api.Event, json.RawMessage, error) {
	ev, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typ})
	if errors.Is(err, api.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", typ, err)
	}
	var e struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(ev.JSON, &e); err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", typ, err)
	}
	return &ev, e.Content, nil
}

// canSendCanonicalAlias reports whether userID, joined to the room, has
// the power to send m.room.canonical_alias there: the check the spec
// suggests for deleting others' aliases, and Synapse's for publishing.
// api.ErrRoomNotFound for an unknown room.
func (h *Handlers) canSendCanonicalAlias(ctx context.Context, roomID, userID string) (bool, error) {
	membership, _, err := h.rooms.Membership(ctx, roomID, userID)
	if err != nil {
		return false, err
	}
	if membership != membershipJoin {
		return false, nil
	}
	createEv, _, err := h.eventContent(ctx, roomID, typeCreate)
	if err != nil {
		return false, err
	}
	if createEv == nil {
		return false, fmt.Errorf("room %s has no create event", roomID)
	}
	version, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(createEv.RoomVersion))
	if err != nil {
		return false, fmt.Errorf("room version of %s: %w", roomID, err)
	}
	var create struct {
		Sender  string `json:"sender"`
		Content struct {
			Creator            string   `json:"creator"`
			AdditionalCreators []string `json:"additional_creators"`
		} `json:"content"`
	}
	_ = json.Unmarshal(createEv.JSON, &create)
	if version.PrivilegedCreators() {
		// Room version 12: the creators' power is infinite.
		if userID == create.Sender {
			return true, nil
		}
		for _, c := range create.Content.AdditionalCreators {
			if c == userID {
				return true, nil
			}
		}
	}
	plEv, _, err := h.eventContent(ctx, roomID, typePowerLevels)
	if err != nil {
		return false, err
	}
	if plEv == nil {
		// Without power levels every member may send state events (the
		// spec's state_default is 0 when there is no such event).
		return true, nil
	}
	pdu, err := plEv.PDU()
	if err != nil {
		return false, err
	}
	levels, err := gomatrixserverlib.NewPowerLevelContentFromEvent(pdu)
	if err != nil {
		return false, fmt.Errorf("parse power levels of %s: %w", roomID, err)
	}
	return levels.UserLevel(spec.SenderID(userID)) >= levels.EventLevel(typeCanonicalAlias, true), nil
}
