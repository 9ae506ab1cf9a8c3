package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// makeMembership answers make_join, make_knock and make_leave: a template of the
// membership event for the user (a user of the asking server), which
// that server signs and sends back with send_join or send_leave.
func (c *Component) makeMembership(r *http.Request, membership string) (any, error) {
	ctx, roomID, userID := r.Context(), httputil.PathParam(r, "roomID"), httputil.PathParam(r, "userID")
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		return nil, httputil.InvalidParam("invalid user id")
	}
	if uid.Domain() != originOf(r) {
		return nil, httputil.Forbidden("the user is not of the requesting server")
	}
	ver, err := c.rooms.RoomVersion(ctx, roomID)
	if errors.Is(err, rsapi.ErrRoomNotFound) {
		return nil, httputil.NotFound("unknown room")
	}
	if err != nil {
		return nil, err
	}
	if membership == spec.Join || membership == spec.Knock {
		supported := r.URL.Query()["ver"]
		if len(supported) == 0 {
			supported = []string{"1"} // the spec's default
		}
		if !slices.Contains(supported, ver) {
			return nil, httputil.Errorf(httputil.CodeIncompatibleRoom, "the room's version %s is not one the server supports", ver).
				WithStatus(http.StatusBadRequest).With("room_version", ver)
		}
	}
	content, _ := json.Marshal(map[string]string{"membership": membership})
	tmpl, err := c.rooms.EventTemplate(ctx, roomID, rsapi.ProtoEvent{Type: spec.MRoomMember, StateKey: &userID, Sender: userID, Content: content})
	var na *rsapi.NotAllowedError
	switch {
	case errors.As(err, &na):
		return nil, httputil.Forbidden("%s", na.Reason)
	case err != nil:
		return nil, err
	}
	return map[string]any{"room_version": tmpl.RoomVersion, "event": tmpl.Proto}, nil
}

// MakeJoin answers GET /_matrix/federation/v1/make_join/{roomId}/{userId}.
func (c *Component) MakeJoin(r *http.Request) (any, error) { return c.makeMembership(r, spec.Join) }

// MakeLeave answers GET /_matrix/federation/v1/make_leave/{roomId}/{userId}.
func (c *Component) MakeLeave(r *http.Request) (any, error) { return c.makeMembership(r, spec.Leave) }

// receiveMembership checks a signed membership event another server sends
// with send_join or send_leave: for the room and event of the path, a
// membership event of membership sent by a user of the asking server
// about themselves, signed by it. It returns the event countersigned by
// this server, accepted by the roomserver.
func (c *Component) receiveMembership(r *http.Request, membership string) (gomatrixserverlib.PDU, error) {
	ctx, roomID := r.Context(), httputil.PathParam(r, "roomID")
	v, err := c.roomVersionOf(ctx, roomID)
	if errors.Is(err, rsapi.ErrRoomNotFound) {
		return nil, httputil.NotFound("unknown room")
	}
	if err != nil {
		return nil, err
	}
	fr := verified(r)
	pdu, err := c.checkPDU(ctx, v, fr.Content())
	if err := checkMembershipPDU(r, pdu, err, membership, "a "+membership+" event of its sender", "sender", func(k string) error {
		if k != string(pdu.SenderID()) {
			return httputil.BadJSON("not a %s event of its sender", membership)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	signed := pdu.Sign(string(c.serverName), gomatrixserverlib.KeyID(c.keys.current.ID), c.keys.current.Private)
	msg, err := c.inputOne(ctx, signed)
	if err != nil {
		return nil, err
	}
	if msg != "" {
		return nil, httputil.Forbidden("%s", msg)
	}
	return signed, nil
}

// checkMembershipPDU checks what every membership event another server
// sends must be: parsed (err is the parse's error), the event and room of
// the path, a member event of membership (what names it in the refusal)
// whose state key stateKey accepts, sent by a user (the role's) of the
// asking server, its content hash intact.
func checkMembershipPDU(r *http.Request, pdu gomatrixserverlib.PDU, err error, membership, what, role string, stateKey func(string) error) error {
	var bad *errPDU
	switch {
	case errors.As(err, &bad):
		return httputil.BadJSON("%s", bad.reason)
	case err != nil:
		return err
	}
	m, _ := pdu.Membership()
	sender, serr := userIDForSender(pdu.RoomID(), pdu.SenderID())
	switch {
	case pdu.EventID() != httputil.PathParam(r, "eventID") || pdu.RoomID().String() != httputil.PathParam(r, "roomID"):
		return httputil.BadJSON("the event is not the one of the path")
	case pdu.Type() != spec.MRoomMember || m != membership || pdu.StateKey() == nil:
		return httputil.BadJSON("not %s", what)
	}
	if err := stateKey(*pdu.StateKey()); err != nil {
		return err
	}
	switch {
	case serr != nil || sender.Domain() != originOf(r):
		return httputil.Forbidden("the %s is not of the requesting server", role)
	case pdu.Redacted():
		return httputil.BadJSON("the event's content hash does not match")
	}
	return nil
}

// sendJoinResponse is the answer of send_join (v2).
type sendJoinResponse struct {
	Origin         string            `json:"origin"`
	Event          json.RawMessage   `json:"event"`
	State          []json.RawMessage `json:"state"`
	AuthChain      []json.RawMessage `json:"auth_chain"`
	MembersOmitted bool              `json:"members_omitted"`
	ServersInRoom  []string          `json:"servers_in_room,omitempty"`
}

// SendJoin answers PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}
// (?omit_members=true for the partial state Synapse asks for by default:
// membership events are then left out of the state, and of the auth chain
// unless the remaining state needs them, and the servers in the room are
// listed instead).
func (c *Component) SendJoin(r *http.Request) (any, error) {
	ctx := r.Context()
	join, err := c.receiveMembership(r, spec.Join)
	if err != nil {
		return nil, err
	}
	state, err := c.rooms.StateBefore(ctx, join.EventID())
	if err != nil {
		return nil, err
	}
	omit := r.URL.Query().Get("omit_members") == "true"
	resp := sendJoinResponse{Origin: string(c.serverName), Event: join.JSON(), MembersOmitted: omit}
	var kept []rsapi.Event
	for _, e := range state {
		if omit && isMemberEvent(e) {
			continue
		}
		kept = append(kept, e)
	}
	ids := append(idsOf(kept), join.EventID())
	chain, err := c.rooms.AuthChain(ctx, ids)
	if err != nil {
		return nil, err
	}
	if omit {
		inState := map[string]bool{}
		for _, e := range kept {
			inState[e.EventID] = true
		}
		chain = slices.DeleteFunc(chain, func(e rsapi.Event) bool { return inState[e.EventID] })
		if resp.ServersInRoom, err = c.rooms.JoinedServers(ctx, join.RoomID().String()); err != nil {
			return nil, err
		}
	}
	resp.State, resp.AuthChain = jsonsOf(kept), jsonsOf(chain)
	return resp, nil
}

// SendLeave answers PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}.
func (c *Component) SendLeave(r *http.Request) (any, error) {
	if _, err := c.receiveMembership(r, spec.Leave); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// isMemberEvent reports whether e is an m.room.member event.
func isMemberEvent(e rsapi.Event) bool {
	var head struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(e.JSON, &head) == nil && head.Type == spec.MRoomMember
}

// JoinRemote joins userID, a local user, to a room this server is not in,
// through the first of servers that lets it: make_join, the join event
// built and signed here, send_join, the answer checked (signatures,
// hashes, the auth rules over the state and auth chain), then the room
// imported into the roomserver with the state before the join. A room
// whose state shows members of servers off the allow-list is left at
// once (fedapi.ErrServerNotAllowed). The returned error is the last
// server's when none let the user in.
func (c *Component) JoinRemote(ctx context.Context, roomID, userID string, servers []string, content map[string]any) error {
	rid, err := spec.NewRoomID(roomID)
	if err != nil {
		return fmt.Errorf("join %s: %w", roomID, err)
	}
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		return fmt.Errorf("join as %s: %w", userID, err)
	}
	lastErr := fedapi.ErrNoServer
	for _, server := range c.askable(servers) {
		if err := c.joinVia(ctx, rid, uid, spec.ServerName(server), content); err != nil {
			c.log.WithError(err).WithFields(map[string]any{fieldRoomID: roomID, fieldServer: server}).Info("remote join failed")
			if errors.Is(err, fedapi.ErrServerNotAllowed) {
				return err // the room is the same through any server
			}
			lastErr = err
			continue
		}
		return nil
	}
	return lastErr
}

// joinVia is one attempt of JoinRemote.
func (c *Component) joinVia(ctx context.Context, roomID *spec.RoomID, userID *spec.UserID, server spec.ServerName, content map[string]any) error {
	ctx = withRelay(ctx, server)
	jc := &joinClient{fc: c.client}
	res, ferr := gomatrixserverlib.PerformJoin(ctx, jc, gomatrixserverlib.PerformJoinInput{
		UserID: userID, RoomID: roomID, ServerName: server, Content: content,
		PrivateKey: c.keys.current.Private, KeyID: gomatrixserverlib.KeyID(c.keys.current.ID), KeyRing: c.keyRing,
		EventProvider: func(gomatrixserverlib.RoomVersion, []string) ([]gomatrixserverlib.PDU, error) {
			return nil, errors.New("missing auth events are not fetched")
		},
		UserIDQuerier: userIDForSender,
	})
	if ferr != nil {
		var herr gomatrix.HTTPError
		if errors.As(ferr.Err, &herr) && herr.Code >= 400 && herr.Code < 500 {
			return fmt.Errorf("%w: %s: %s", fedapi.ErrRefused, server, remoteMessage(herr))
		}
		return ferr.Err
	}
	join := res.JoinEvent
	req := rsapi.ImportRoomRequest{RoomID: roomID.String(), RoomVersion: string(join.Version()), Join: join.JSON()}
	for _, js := range res.StateSnapshot.GetStateEvents() {
		req.State = append(req.State, json.RawMessage(js))
	}
	// The room turns out to hold members of servers off the allow-list:
	// the join, already in the room, is taken back. The state is read as
	// the resident server sent it: the checked state has lost the events
	// whose signatures could not be checked, and must not hide a member.
	var state [][]byte
	for _, js := range jc.sent.GetStateEvents() {
		state = append(state, js)
	}
	if err := c.offList(joinedServersOf(state, jc.sent.ServersInRoom)); err != nil {
		if lerr := c.leaveVia(ctx, roomID.String(), userID.String(), server); lerr != nil {
			c.log.WithError(lerr).WithFields(map[string]any{fieldRoomID: roomID.String(), fieldServer: server}).Warn("taking back a join refused by the allow-list")
		}
		return err
	}
	for _, js := range res.StateSnapshot.GetAuthEvents() {
		req.AuthChain = append(req.AuthChain, json.RawMessage(js))
	}
	_, err := c.rooms.ImportRoom(ctx, req)
	if err == nil {
		return nil
	}
	// The room is known here already (other local users are in it):
	// the join goes in as any other event.
	if _, verr := c.rooms.RoomVersion(ctx, roomID.String()); verr == nil {
		msg, ierr := c.inputOne(ctx, join)
		if ierr != nil {
			return ierr
		}
		if msg != "" {
			return fmt.Errorf("join event: %s", msg)
		}
		return nil
	}
	return fmt.Errorf("import room %s: %w", roomID.String(), err)
}

// joinClient adapts the federation client to the join interface of
// gomatrixserverlib.PerformJoin, and keeps send_join's answer as it came.
type joinClient struct {
	fc   fclient.FederationClient
	sent fclient.RespSendJoin
}

// MakeJoin implements gomatrixserverlib.FederatedJoinClient.
func (j *joinClient) MakeJoin(ctx context.Context, origin, s spec.ServerName, roomID, userID string) (gomatrixserverlib.MakeJoinResponse, error) {
	res, err := j.fc.MakeJoin(ctx, origin, s, roomID, userID)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// SendJoin implements gomatrixserverlib.FederatedJoinClient.
func (j *joinClient) SendJoin(ctx context.Context, origin, s spec.ServerName, event gomatrixserverlib.PDU) (gomatrixserverlib.SendJoinResponse, error) {
	res, err := j.fc.SendJoin(ctx, origin, s, event)
	if err != nil {
		return nil, err
	}
	j.sent = res
	return &res, nil
}

// remoteMessage is the Matrix error message of a remote server's answer,
// or its status when there is none.
func remoteMessage(herr gomatrix.HTTPError) string {
	var body struct {
		ErrCode string `json:"errcode"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(herr.Contents, &body) == nil && body.ErrCode != "" {
		return body.ErrCode + " " + body.Error
	}
	return fmt.Sprintf("HTTP %d", herr.Code)
}

var _ fedapi.RemoteJoiner = (*Component)(nil)

// askable returns the servers a request about a room can be made of, in
// order and each once: those of servers that are not this one and that
// the federation policy allows.
func (c *Component) askable(servers []string) []string {
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		if s != string(c.serverName) && c.cfg.ServerAllowed(s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
