package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// inviteRequest is the body of PUT /_matrix/federation/v2/invite.
type inviteRequest struct {
	RoomVersion     string            `json:"room_version"`
	Event           json.RawMessage   `json:"event"`
	InviteRoomState []json.RawMessage `json:"invite_room_state"`
}

// Invite answers PUT /_matrix/federation/v2/invite/{roomId}/{eventId}: an
// invite of one of our users, sent by a user of the asking server, is
// checked, countersigned and kept (with the room's stripped state when
// this server is not in the room), so that the user sees it in /sync.
func (c *Component) Invite(r *http.Request) (any, error) {
	ctx, roomID := r.Context(), httputil.PathParam(r, "roomID")
	var req inviteRequest
	if err := decodeContent(r, &req); err != nil {
		return nil, err
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(req.RoomVersion))
	if err != nil {
		return nil, httputil.Errorf(httputil.CodeIncompatibleRoom, "room version %q is not supported", req.RoomVersion).
			WithStatus(http.StatusBadRequest).With("room_version", req.RoomVersion)
	}
	// The signatures are checked once the invite is countersigned: the
	// spec requires the invitee's server's too.
	pdu, err := c.parsePDU(v, req.Event)
	if err := checkMembershipPDU(r, pdu, err, spec.Invite, "an invite", "inviter", func(k string) error {
		if serverOf(k) != string(c.serverName) {
			return httputil.BadJSON("the invited user is not of this server")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	signed := pdu.Sign(string(c.serverName), gomatrixserverlib.KeyID(c.keys.current.ID), c.keys.current.Private)
	if err := c.checkSignatures(ctx, signed); err != nil {
		return nil, httputil.Forbidden("%v", err)
	}
	inRoom, err := c.inRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if inRoom {
		msg, err := c.inputOne(ctx, signed)
		if err != nil {
			return nil, err
		}
		if msg != "" {
			return nil, httputil.Forbidden("%s", msg)
		}
	} else {
		// The stripped state is all the invitee will see of the room.
		if err := c.checkStrippedState(withRelay(ctx, originOf(r)), v, roomID, req.InviteRoomState); err != nil {
			return nil, httputil.BadJSON("invite_room_state: %v", err)
		}
		_, err := c.rooms.ImportMembership(ctx, rsapi.ImportMembershipRequest{
			RoomID: roomID, RoomVersion: req.RoomVersion, Event: signed.JSON(), StrippedState: req.InviteRoomState,
		})
		if errors.Is(err, rsapi.ErrInvalidEvent) {
			return nil, httputil.BadJSON("%v", err)
		}
		if err != nil {
			return nil, err
		}
	}
	return map[string]json.RawMessage{"event": signed.JSON()}, nil
}

// inRoom reports whether this server is in the room: it has the room's
// create event in its state (not only an invite to it).
func (c *Component) inRoom(ctx context.Context, roomID string) (bool, error) {
	_, err := c.rooms.CurrentStateEvent(ctx, roomID, rsapi.StateKey{Type: spec.MRoomCreate})
	if errors.Is(err, rsapi.ErrRoomNotFound) || errors.Is(err, rsapi.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// InviteRemote invites target, a user of another server, to roomID on
// behalf of sender (a local user): the invite is built on the room's
// extremities (the auth rules decide whether sender may), signed, sent
// to the target's server (v2 invite, with the room's stripped state, the
// create event in full), and once countersigned there, accepted here.
func (c *Component) InviteRemote(ctx context.Context, roomID, sender, target string, extra map[string]any) error {
	dest := serverOf(target)
	if dest == "" || dest == string(c.serverName) {
		return fmt.Errorf("invite %s: not a remote user", target)
	}
	if !c.cfg.ServerAllowed(dest) {
		return fmt.Errorf("invite %s: %w", target, fedapi.ErrNoServer)
	}
	content := map[string]any{}
	for k, v := range extra {
		content[k] = v
	}
	content["membership"] = spec.Invite
	raw, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("encode invite: %w", err)
	}
	tmpl, err := c.rooms.EventTemplate(ctx, roomID, rsapi.ProtoEvent{Type: spec.MRoomMember, StateKey: &target, Sender: sender, Content: raw})
	if err != nil {
		return err
	}
	var proto gomatrixserverlib.ProtoEvent
	if err := json.Unmarshal(tmpl.Proto, &proto); err != nil {
		return fmt.Errorf("decode invite template: %w", err)
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(tmpl.RoomVersion))
	if err != nil {
		return rsapi.ErrUnsupportedVersion
	}
	invite, err := v.NewEventBuilderFromProtoEvent(&proto).Build(c.now(), c.serverName, gomatrixserverlib.KeyID(c.keys.current.ID), c.keys.current.Private)
	if err != nil {
		return fmt.Errorf("build invite: %w", err)
	}
	stripped, err := c.rooms.StrippedState(ctx, roomID)
	if err != nil {
		return err
	}
	var resp fclient.RespInviteV2
	path := "/_matrix/federation/v2/invite/" + url.PathEscape(roomID) + "/" + url.PathEscape(invite.EventID())
	req := inviteRequest{RoomVersion: tmpl.RoomVersion, Event: invite.JSON(), InviteRoomState: stripped}
	if err := c.request(ctx, "PUT", dest, path, req, &resp); err != nil {
		var herr gomatrix.HTTPError
		if errors.As(err, &herr) && herr.Code >= 400 && herr.Code < 500 {
			return fmt.Errorf("%w: %s: %s", fedapi.ErrRefused, dest, remoteMessage(herr))
		}
		return fmt.Errorf("invite %s through %s: %w", target, dest, err)
	}
	signed, err := c.checkPDU(ctx, v, json.RawMessage(resp.Event))
	if err != nil {
		return fmt.Errorf("%w: %s: the signed invite does not check: %v", fedapi.ErrRefused, dest, err)
	}
	if signed.EventID() != invite.EventID() {
		return fmt.Errorf("%w: %s returned another event", fedapi.ErrRefused, dest)
	}
	msg, err := c.inputOne(ctx, signed)
	if err != nil {
		return err
	}
	if msg != "" {
		return &rsapi.NotAllowedError{Reason: msg}
	}
	return nil
}

var _ fedapi.RemoteInviter = (*Component)(nil)

// LeaveRemote makes userID (a local user invited to, or knocking on, a
// room this server is not in) leave it, rejecting the invite or
// withdrawing the knock, through the first of servers that lets it: make_leave, the leave built and signed here, send_leave,
// then the leave kept as the user's membership.
func (c *Component) LeaveRemote(ctx context.Context, roomID, userID string, servers []string) error {
	lastErr := fedapi.ErrNoServer
	for _, server := range c.askable(servers) {
		if err := c.leaveVia(ctx, roomID, userID, spec.ServerName(server)); err != nil {
			c.log.WithError(err).WithFields(map[string]any{fieldRoomID: roomID, fieldServer: server}).Info("remote leave failed")
			lastErr = err
			continue
		}
		return nil
	}
	return lastErr
}

// leaveVia is one attempt of LeaveRemote.
func (c *Component) leaveVia(ctx context.Context, roomID, userID string, server spec.ServerName) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.client.MakeLeave(ctx, c.serverName, server, roomID, userID)
	if err != nil {
		return refusal(server, err)
	}
	v, err := gomatrixserverlib.GetRoomVersion(res.RoomVersion)
	if err != nil {
		return rsapi.ErrUnsupportedVersion
	}
	proto := res.LeaveEvent
	proto.Type, proto.RoomID, proto.SenderID, proto.StateKey, proto.Redacts = spec.MRoomMember, roomID, userID, &userID, ""
	proto.Content, _ = json.Marshal(map[string]string{"membership": spec.Leave})
	leave, err := v.NewEventBuilderFromProtoEvent(&proto).Build(c.now(), c.serverName, gomatrixserverlib.KeyID(c.keys.current.ID), c.keys.current.Private)
	if err != nil {
		return fmt.Errorf("build leave: %w", err)
	}
	if err := c.client.SendLeave(ctx, c.serverName, server, leave); err != nil {
		return refusal(server, err)
	}
	_, err = c.rooms.ImportMembership(ctx, rsapi.ImportMembershipRequest{RoomID: roomID, RoomVersion: string(res.RoomVersion), Event: leave.JSON()})
	if errors.Is(err, rsapi.ErrRoomNotFound) {
		return nil // a join taken back: nothing of the room was kept
	}
	return err
}

// refusal turns a remote server's 4xx answer into fedapi.ErrRefused.
func refusal(server spec.ServerName, err error) error {
	var herr gomatrix.HTTPError
	if errors.As(err, &herr) && herr.Code >= 400 && herr.Code < 500 {
		return fmt.Errorf("%w: %s: %s", fedapi.ErrRefused, server, remoteMessage(herr))
	}
	return err
}
