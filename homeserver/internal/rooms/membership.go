package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// membershipRequest is the body of the membership endpoints; user_id is
// the target of invite, kick, ban and unban.
type membershipRequest struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

// Join is POST /rooms/{roomID}/join.
func (h *Handlers) Join(r *http.Request) (any, error) {
	return h.join(r, httputil.PathParam(r, "roomID"), nil)
}

// JoinByIDOrAlias is POST /join/{roomIDOrAlias}: a room id, or an alias
// (of this server, or asked of its own). A room this server is not in
// is joined over federation through the servers of ?via= (or the older
// ?server_name=), the room id's own server, if it names one, and those
// the alias's server gave.
func (h *Handlers) JoinByIDOrAlias(r *http.Request) (any, error) {
	roomID, servers, err := h.roomIDOrAlias(r.Context(), httputil.PathParam(r, "roomIDOrAlias"))
	if err != nil {
		return nil, err
	}
	return h.join(r, roomID, servers)
}

// join makes the requesting user join roomID; a room this server is not
// in is joined through the request's servers, then aliasServers.
func (h *Handlers) join(r *http.Request, roomID string, aliasServers []string) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	var req membershipRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if joined, err := h.joinRemote(r, roomID, dev.UserID, req.Reason, aliasServers); joined || err != nil {
		if err != nil {
			return nil, err
		}
		return map[string]string{"room_id": roomID}, nil
	}
	if err := h.checkRoomServers(r.Context(), roomID); err != nil {
		return nil, err
	}
	// A restricted room's join names who lets the user in (restricted.go).
	via, err := h.restrictedJoinVia(r.Context(), roomID, dev.UserID)
	if err != nil {
		return nil, err
	}
	content := memberContent(membershipJoin, req.Reason)
	if err := h.addProfile(r.Context(), dev.UserID, content); err != nil {
		return nil, err
	}
	if via != "" {
		content[fieldAuthorisedVia] = via
	}
	if err := h.sendMember(r.Context(), roomID, dev.UserID, dev.UserID, content); err != nil {
		return nil, err
	}
	// A forgotten room comes back when its user joins again.
	if err := h.store.UnforgetRoom(r.Context(), dev.UserID, roomID); err != nil {
		return nil, err
	}
	return map[string]string{"room_id": roomID}, nil
}

// Invite is POST /rooms/{roomID}/invite.
func (h *Handlers) Invite(r *http.Request) (any, error) {
	req, err := h.targetRequest(r)
	if err != nil {
		return nil, err
	}
	u, _ := checkUserID("user_id", req.UserID)
	dev := auth.DeviceFrom(r.Context())
	if err := h.checkRoomServers(r.Context(), httputil.PathParam(r, "roomID")); err != nil {
		return nil, err
	}
	if string(u.Domain()) != h.global.ServerName {
		if h.remote == nil {
			return nil, errRemoteInvite()
		}
		if err := h.inviteRemote(r.Context(), httputil.PathParam(r, "roomID"), dev.UserID, req.UserID, reasonContent(req.Reason)); err != nil {
			return nil, err
		}
		return struct{}{}, nil
	}
	if err := h.askBridges(r.Context(), req.UserID); err != nil {
		return nil, err
	}
	if err := h.setMembership(r.Context(), httputil.PathParam(r, "roomID"), dev.UserID, req.UserID, membershipInvite, req.Reason); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// Leave is POST /rooms/{roomID}/leave: leave, or decline an invite.
func (h *Handlers) Leave(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	var req membershipRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	roomID := httputil.PathParam(r, "roomID")
	if left, err := h.leaveRemote(r.Context(), roomID, dev.UserID); left || err != nil {
		if err != nil {
			return nil, err
		}
		return struct{}{}, nil
	}
	if err := h.setMembership(r.Context(), roomID, dev.UserID, dev.UserID, membershipLeave, req.Reason); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// remoteServers returns the servers through which userID's invite to,
// or knock on, roomID can be answered when this server is not in the
// room (it knows the room only from that invite or knock): the
// inviter's server, or for a knock the servers of the senders of the
// room's stripped state (its creator's first); none otherwise.
func (h *Handlers) remoteServers(ctx context.Context, roomID, userID string) ([]string, error) {
	if in, err := h.inRoom(ctx, roomID); in || err != nil {
		return nil, err
	}
	ev, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeMember, StateKey: userID})
	if errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrRoomNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e, err := events.Parse(ev)
	if err != nil {
		return nil, err
	}
	switch e.Membership() {
	case membershipInvite:
		_, domain, _ := strings.Cut(e.Sender, ":")
		return []string{domain}, nil
	case membershipKnock:
		stripped, err := h.rooms.StrippedState(ctx, roomID)
		if err != nil {
			return nil, err
		}
		var servers []string
		for _, raw := range stripped {
			var head struct {
				Type   string `json:"type"`
				Sender string `json:"sender"`
			}
			if json.Unmarshal(raw, &head) != nil {
				continue
			}
			_, domain, _ := strings.Cut(head.Sender, ":")
			switch {
			case domain == "" || domain == h.global.ServerName || slices.Contains(servers, domain):
			case head.Type == typeCreate:
				servers = append([]string{domain}, servers...)
			default:
				servers = append(servers, domain)
			}
		}
		return servers, nil
	}
	return nil, nil
}

// leaveRemote rejects an invite to, or withdraws a knock on, a room this
// server is not in, over federation; left is false when the leave is a
// local one.
func (h *Handlers) leaveRemote(ctx context.Context, roomID, userID string) (left bool, err error) {
	if h.remote == nil {
		return false, nil
	}
	servers, err := h.remoteServers(ctx, roomID, userID)
	if err != nil || len(servers) == 0 {
		return false, err
	}
	err = h.remote.LeaveRemote(ctx, roomID, userID, servers)
	switch {
	case errors.Is(err, fedapi.ErrNoServer):
		return false, httputil.Forbidden("this server no longer federates with the room's servers")
	case errors.Is(err, fedapi.ErrRefused):
		return false, httputil.Forbidden("%v", err)
	case err != nil:
		return false, fmt.Errorf("leave over federation: %w", err)
	}
	return true, nil
}

// Kick is POST /rooms/{roomID}/kick: only a user who is in the room (or
// invited, or knocking) can be kicked, as Synapse has it.
func (h *Handlers) Kick(r *http.Request) (any, error) {
	req, err := h.targetRequest(r)
	if err != nil {
		return nil, err
	}
	roomID := httputil.PathParam(r, "roomID")
	current, err := h.currentMembership(r.Context(), roomID, req.UserID)
	if err != nil {
		return nil, err
	}
	if current != membershipJoin && current != membershipInvite && current != membershipKnock {
		return nil, httputil.Forbidden("the target user is not in the room")
	}
	dev := auth.DeviceFrom(r.Context())
	if err := h.setMembership(r.Context(), roomID, dev.UserID, req.UserID, membershipLeave, req.Reason); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// Ban is POST /rooms/{roomID}/ban.
func (h *Handlers) Ban(r *http.Request) (any, error) {
	req, err := h.targetRequest(r)
	if err != nil {
		return nil, err
	}
	dev := auth.DeviceFrom(r.Context())
	if err := h.setMembership(r.Context(), httputil.PathParam(r, "roomID"), dev.UserID, req.UserID, membershipBan, req.Reason); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// Unban is POST /rooms/{roomID}/unban. Unbanning a user who is not
// banned would kick them (the two are the same event), so it is refused
// with 403 M_BAD_STATE, as Synapse does.
func (h *Handlers) Unban(r *http.Request) (any, error) {
	req, err := h.targetRequest(r)
	if err != nil {
		return nil, err
	}
	roomID := httputil.PathParam(r, "roomID")
	current, err := h.currentMembership(r.Context(), roomID, req.UserID)
	if err != nil {
		return nil, err
	}
	if current != membershipBan {
		return nil, httputil.Errorf(httputil.CodeBadState, "the user is not banned").WithStatus(http.StatusForbidden)
	}
	dev := auth.DeviceFrom(r.Context())
	if err := h.setMembership(r.Context(), roomID, dev.UserID, req.UserID, membershipLeave, req.Reason); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// Forget is POST /rooms/{roomID}/forget: the user, who must have left
// (or been banned), stops seeing the room: its reads answer as for a room
// the user was never in, until the user's membership changes again.
func (h *Handlers) Forget(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	roomID := httputil.PathParam(r, "roomID")
	membership, pos, err := h.rooms.Membership(r.Context(), roomID, dev.UserID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return nil, httputil.NotFound("room not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read membership: %w", err)
	}
	switch membership {
	case "":
		// Nothing to forget; Synapse answers this with success too.
		return struct{}{}, nil
	case membershipLeave, membershipBan:
	default:
		return nil, httputil.Errorf(httputil.CodeUnknown, "you must leave the room before forgetting it").WithStatus(http.StatusBadRequest)
	}
	if err := h.store.ForgetRoom(r.Context(), dev.UserID, roomID, pos); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// targetRequest decodes the body of an endpoint that names a target user
// and checks the user id.
func (h *Handlers) targetRequest(r *http.Request) (membershipRequest, error) {
	var req membershipRequest
	if err := h.decode(r, &req); err != nil {
		return membershipRequest{}, err
	}
	if _, err := checkUserID("user_id", req.UserID); err != nil {
		return membershipRequest{}, err
	}
	return req, nil
}

// currentMembership returns userID's membership in roomID; an unknown
// room is 404.
func (h *Handlers) currentMembership(ctx context.Context, roomID, userID string) (string, error) {
	m, _, err := h.rooms.Membership(ctx, roomID, userID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return "", httputil.NotFound("room not found")
	}
	if err != nil {
		return "", fmt.Errorf("read membership: %w", err)
	}
	return m, nil
}

// setMembership sends sender's m.room.member event setting target's
// membership, with the reason when given. The auth rules decide whether
// sender may (403 with their reason when not). Repeating the current
// membership event (same sender, membership and content) sends nothing,
// as Synapse does, so that retries of a join or leave are harmless.
// An invite of a local user carries the invitee's display name and
// avatar, as on Synapse, so that the room shows who was invited.
func (h *Handlers) setMembership(ctx context.Context, roomID, sender, target, membership, reason string) error {
	content := memberContent(membership, reason)
	if membership == membershipInvite && h.isLocal(target) {
		if err := h.addProfile(ctx, target, content); err != nil {
			return err
		}
	}
	return h.sendMember(ctx, roomID, sender, target, content)
}

// addProfile puts userID's display name and avatar URL into a member
// event's content.
func (h *Handlers) addProfile(ctx context.Context, userID string, content map[string]string) error {
	if h.profiles == nil {
		return nil
	}
	name, avatar, err := h.profiles.MemberProfile(ctx, userID)
	if err != nil {
		return fmt.Errorf("read profile: %w", err)
	}
	if name != nil {
		content["displayname"] = *name
	}
	if avatar != nil {
		content["avatar_url"] = *avatar
	}
	return nil
}

// memberContent is the content of a member event: the membership, and
// the reason when given.
func memberContent(membership, reason string) map[string]string {
	content := map[string]string{"membership": membership}
	if reason != "" {
		content["reason"] = reason
	}
	return content
}

// sendMember is setMembership with the whole content given.
func (h *Handlers) sendMember(ctx context.Context, roomID, sender, target string, content map[string]string) error {
	raw, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("encode member event: %w", err)
	}
	cur, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeMember, StateKey: target})
	switch {
	case errors.Is(err, api.ErrRoomNotFound):
		return httputil.NotFound("room not found")
	case errors.Is(err, api.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read member event: %w", err)
	default:
		if e, err := events.Parse(cur); err == nil && e.Sender == sender && sameJSON(e.Content, raw) {
			return nil
		}
	}
	out, err := h.rooms.Send(ctx, roomID, api.ProtoEvent{Type: typeMember, StateKey: stateKeyPtr(target), Sender: sender, Content: raw})
	if err != nil {
		return writeError("send member event", err, httputil.NotFound("room not found"))
	}
	h.awaitSync(ctx, out)
	return nil
}

// sameJSON reports whether two JSON values are equal as values.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	ca, err1 := json.Marshal(va)
	cb, err2 := json.Marshal(vb)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// askBridges asks the application services about a local user who has no
// account, so that a bridge whose namespace holds it creates it before it
// is invited (GET /_matrix/app/v1/users/{userId}). The invite goes ahead
// whatever they answer.
func (h *Handlers) askBridges(ctx context.Context, userID string) error {
	if h.bridges == nil {
		return nil
	}
	if _, err := h.store.Account(ctx, userID); !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	_, err := h.bridges.QueryUser(ctx, userID)
	return err
}

// joinRemote joins userID to roomID over federation when this server
// does not know the room and can federate; joined is false when the
// join is a local one.
func (h *Handlers) joinRemote(r *http.Request, roomID, userID, reason string, aliasServers []string) (joined bool, err error) {
	if h.remote == nil {
		return false, nil
	}
	ctx := r.Context()
	// This server is in the room when it has the room's create event; a
	// room known only from an invite is joined through the inviter's
	// server.
	if in, err := h.inRoom(ctx, roomID); in || err != nil {
		return false, err
	}
	servers := append(viaServers(r, roomID), aliasServers...)
	more, err := h.remoteServers(ctx, roomID, userID)
	if err != nil {
		return false, err
	}
	servers = append(servers, more...)
	if len(servers) == 0 {
		return false, httputil.NotFound("unknown room, and no server to join it through")
	}
	content := map[string]any{}
	if reason != "" {
		content["reason"] = reason
	}
	err = h.remote.JoinRemote(ctx, roomID, userID, servers, content)
	switch {
	case errors.Is(err, fedapi.ErrNoServer):
		return false, httputil.NotFound("no server this one federates with can let you in")
	case errors.Is(err, fedapi.ErrServerNotAllowed), errors.Is(err, fedapi.ErrRefused):
		return false, httputil.Forbidden("%v", err)
	case err != nil:
		return false, fmt.Errorf("join over federation: %w", err)
	}
	if err := h.store.UnforgetRoom(ctx, userID, roomID); err != nil {
		return false, err
	}
	return true, nil
}

// inviteRemote invites a user of another server over federation.
func (h *Handlers) inviteRemote(ctx context.Context, roomID, sender, target string, content map[string]any) error {
	// The same answers as a local invite for who may not invite.
	if m, err := h.currentMembership(ctx, roomID, target); err != nil {
		return err
	} else if m == membershipJoin || m == membershipBan {
		return httputil.Forbidden("%s is already %s", target, m)
	}
	err := h.remote.InviteRemote(ctx, roomID, sender, target, content)
	var na *api.NotAllowedError
	switch {
	case errors.Is(err, api.ErrRoomNotFound):
		return httputil.NotFound("room not found")
	case errors.As(err, &na):
		return httputil.Forbidden("%s", na.Reason)
	case errors.Is(err, fedapi.ErrNoServer):
		return httputil.Forbidden("this server does not federate with %s's server", target)
	case errors.Is(err, fedapi.ErrRefused):
		return httputil.Forbidden("%v", err)
	case err != nil:
		return fmt.Errorf("invite over federation: %w", err)
	}
	return nil
}

// reasonContent is the member event content besides membership that a
// reason makes.
func reasonContent(reason string) map[string]any {
	if reason == "" {
		return nil
	}
	return map[string]any{"reason": reason}
}
