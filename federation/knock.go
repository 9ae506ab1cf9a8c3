package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Knocks over federation (spec: "Knocking upon a room"). A user of
// another server knocks on one of our rooms with make_knock (a template
// of the knock, checked against the room's current state) and send_knock
// (the signed knock, accepted here and answered with the room's stripped
// state); the room's members then answer it with an invite, or a kick.
// Our users knock on rooms this server is not in the same way the other
// way round (KnockRemote); the knock is kept as the user's membership of
// a stub room, with the stripped state the resident server gave.

// MakeKnock answers GET /_matrix/federation/v1/make_knock/{roomId}/{userId}.
func (c *Component) MakeKnock(r *http.Request) (any, error) { return c.makeMembership(r, spec.Knock) }

// sendKnockResponse is the answer of send_knock.
type sendKnockResponse struct {
	KnockRoomState []json.RawMessage `json:"knock_room_state"`
}

// SendKnock answers PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}:
// the knock is checked and accepted, and the answer is the room's
// stripped state (the create event in full, spec v1.16).
func (c *Component) SendKnock(r *http.Request) (any, error) {
	knock, err := c.receiveMembership(r, spec.Knock)
	if err != nil {
		return nil, err
	}
	stripped, err := c.rooms.StrippedState(r.Context(), knock.RoomID().String())
	if err != nil {
		return nil, err
	}
	if stripped == nil {
		stripped = []json.RawMessage{}
	}
	return sendKnockResponse{KnockRoomState: stripped}, nil
}

// makeKnockResponse is the answer of make_knock.
type makeKnockResponse struct {
	RoomVersion string                       `json:"room_version"`
	Event       gomatrixserverlib.ProtoEvent `json:"event"`
}

// KnockRemote implements fedapi.RemoteKnocker.
func (c *Component) KnockRemote(ctx context.Context, roomID, userID string, servers []string, content map[string]any) error {
	lastErr := fedapi.ErrNoServer
	for _, server := range c.askable(servers) {
		if err := c.knockVia(ctx, roomID, userID, spec.ServerName(server), content); err != nil {
			c.log.WithError(err).WithFields(map[string]any{fieldRoomID: roomID, fieldServer: server}).Info("remote knock failed")
			lastErr = err
			continue
		}
		return nil
	}
	return lastErr
}

// supportedVersions is the ver query of make_join and make_knock: every
// room version this server runs.
func supportedVersions() string {
	var vs []string
	for v := range gomatrixserverlib.RoomVersions() {
		vs = append(vs, string(v))
	}
	sort.Strings(vs)
	q := url.Values{"ver": vs}
	return q.Encode()
}

// knockVia is one attempt of KnockRemote.
func (c *Component) knockVia(ctx context.Context, roomID, userID string, server spec.ServerName, extra map[string]any) error {
	ctx = withRelay(ctx, server)
	var tmpl makeKnockResponse
	path := "/_matrix/federation/v1/make_knock/" + url.PathEscape(roomID) + "/" + url.PathEscape(userID) + "?" + supportedVersions()
	if err := c.request(ctx, "GET", string(server), path, nil, &tmpl); err != nil {
		return refusal(server, err)
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(tmpl.RoomVersion))
	if err != nil {
		return rsapi.ErrUnsupportedVersion
	}
	content := map[string]any{}
	for k, val := range extra {
		content[k] = val
	}
	content["membership"] = spec.Knock
	proto := tmpl.Event
	proto.Type, proto.RoomID, proto.SenderID, proto.StateKey, proto.Redacts = spec.MRoomMember, roomID, userID, &userID, ""
	if proto.Content, err = json.Marshal(content); err != nil {
		return fmt.Errorf("encode knock: %w", err)
	}
	knock, err := v.NewEventBuilderFromProtoEvent(&proto).Build(c.now(), c.serverName, gomatrixserverlib.KeyID(c.keys.current.ID), c.keys.current.Private)
	if err != nil {
		return fmt.Errorf("build knock: %w", err)
	}
	var resp sendKnockResponse
	path = "/_matrix/federation/v1/send_knock/" + url.PathEscape(roomID) + "/" + url.PathEscape(knock.EventID())
	if err := c.request(ctx, "PUT", string(server), path, json.RawMessage(knock.JSON()), &resp); err != nil {
		return refusal(server, err)
	}
	if err := c.checkStrippedState(ctx, v, roomID, resp.KnockRoomState); err != nil {
		return fmt.Errorf("%w: %s: %v", fedapi.ErrRefused, server, err)
	}
	_, err = c.rooms.ImportMembership(ctx, rsapi.ImportMembershipRequest{
		RoomID: roomID, RoomVersion: tmpl.RoomVersion, Event: knock.JSON(), StrippedState: resp.KnockRoomState,
	})
	return err
}

// checkStrippedState checks the stripped state another server gives
// with an invite or a knock, for room roomID of version v: from room
// version 12 (room ids derived from the create event) it must hold the
// m.room.create event in full (spec v1.16), whose id must give roomID
// and whose signatures must check; in older rooms a full create event
// is checked the same way, a stripped one (servers before v1.16) is
// taken as it is.
func (c *Component) checkStrippedState(ctx context.Context, v gomatrixserverlib.IRoomVersion, roomID string, stripped []json.RawMessage) error {
	for _, raw := range stripped {
		var head struct {
			Type       string          `json:"type"`
			StateKey   *string         `json:"state_key"`
			Signatures json.RawMessage `json:"signatures"`
		}
		if json.Unmarshal(raw, &head) != nil || head.Type != spec.MRoomCreate || head.StateKey == nil || *head.StateKey != "" {
			continue
		}
		if !v.DomainlessRoomIDs() && len(head.Signatures) == 0 {
			return nil
		}
		create, err := c.parsePDU(v, raw)
		var bad *errPDU
		switch {
		case errors.As(err, &bad):
			return fmt.Errorf("the stripped state's m.room.create: %s", bad.reason)
		case err != nil:
			return err
		case create.Redacted():
			return errors.New("the stripped state's m.room.create does not match its content hash")
		case create.RoomID().String() != roomID:
			return fmt.Errorf("the stripped state's m.room.create is of room %s, not %s", create.RoomID().String(), roomID)
		}
		if err := c.checkSignatures(ctx, create); err != nil {
			return fmt.Errorf("the stripped state's m.room.create: %w", err)
		}
		return nil
	}
	if v.DomainlessRoomIDs() {
		return errors.New("the stripped state has no m.room.create event")
	}
	return nil
}

var _ fedapi.RemoteKnocker = (*Component)(nil)
