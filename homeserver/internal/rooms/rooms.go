// Package rooms serves the client-server room API: createRoom, membership
// (join, invite, leave, forget, kick, ban, unban, knock, restricted
// joins), sending messages and state, redactions, room upgrades, and the
// read paths (/state, /members, /joined_members, /joined_rooms, /event,
// /messages, /context).
//
// It sits in the homeserver component above roomserver/api: every change
// goes to the roomserver as a ProtoEvent (the roomserver builds, authorises
// and commits it), every read comes from the roomserver's Reader, and this
// package decides who may see what (history visibility, visibility.go).
// Its own tables (transaction ids, forgotten rooms) are in
// homeserver/storage.
package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/config"
	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// RoomReadWriter is what the room API asks of the roomserver: to change
// rooms and to read them.
type RoomReadWriter interface {
	api.Writer
	api.Reader
	api.Relations
}

// Deps is what the room handlers need.
type Deps struct {
	Global *config.Global
	Config *config.Client
	Store  *storage.Store
	Rooms  RoomReadWriter
	// Directory is the room directory's hooks (homeserver/internal/
	// directory): room_alias_name and visibility of createRoom, joins by
	// alias, the m.room.canonical_alias check, the aliases' move when a
	// room is upgraded. Nil: none of these.
	Directory DirectoryHooks
	// Synced, when set, lets a write return only once /sync has the event
	// (read your writes), within syncWait.
	Synced SyncWaiter
	// TxnIDs finds the transaction ids of a device's own events, for
	// unsigned.transaction_id; nil: Store's, which the feeder writes a
	// little after a send returns (streams.TxnIDs sees them sooner).
	TxnIDs events.TxnIDs
	// Profiles gives the display name and avatar that joins and invites
	// carry in their member events; nil: none.
	Profiles Profiles
	// Bridges, when set, are asked about a local invitee who has no
	// account (a bridge creates its users on demand).
	Bridges UserQuerier
	// Remote joins rooms this server is not in and invites users of
	// other servers, over federation. Nil: joins of unknown rooms answer
	// 404, remote invites 403.
	Remote fedapi.RemoteRooms
	// ServerACL, when set, is the servers that rooms created here allow
	// in their m.room.server_acl (a closed federation's allow-list, this
	// server included); nil: rooms get no ACL.
	ServerACL []string
}

// Profiles reads the display name and avatar URL of a local user (nil
// when unset).
type Profiles interface {
	MemberProfile(ctx context.Context, userID string) (displayName, avatarURL *string, err error)
}

// UserQuerier asks application services about users in their namespaces.
type UserQuerier interface {
	QueryUser(ctx context.Context, userID string) (bool, error)
}

// SyncWaiter waits for /sync's streams to reach an event.
type SyncWaiter interface {
	WaitForEvent(ctx context.Context, roomID string, streamPos int64, timeout time.Duration)
}

// syncWait bounds the wait for /sync after a write: past it, the write
// succeeded all the same and the event comes in a later sync.
const syncWait = 2 * time.Second

// DirectoryHooks is what the room API asks of the room directory.
type DirectoryHooks interface {
	NewRoomAlias(ctx context.Context, localpart string) (string, error)
	PublishNewRoom(ctx context.Context, roomID, creator, alias string, public bool) error
	ResolveRoomAlias(ctx context.Context, alias string) (roomID string, servers []string, err error)
	CheckCanonicalAlias(ctx context.Context, roomID string, content json.RawMessage) error
	MoveRoom(ctx context.Context, oldRoomID, newRoomID, userID string) error
}

// Handlers serves the room endpoints.
type Handlers struct {
	global *config.Global
	cfg    *config.Client
	store  *storage.Store
	rooms  RoomReadWriter
	dir    DirectoryHooks
	synced SyncWaiter
	txnIDs events.TxnIDs
	// profiles is nil when Deps.Profiles was.
	profiles Profiles
	// bridges is nil when Deps.Bridges was.
	bridges UserQuerier
	remote  fedapi.RemoteRooms
	acl     []string
	now     func() time.Time
}

// New returns the room handlers.
func New(d Deps) *Handlers {
	h := &Handlers{global: d.Global, cfg: d.Config, store: d.Store, rooms: d.Rooms, dir: d.Directory, synced: d.Synced,
		txnIDs: d.TxnIDs, profiles: d.Profiles, bridges: d.Bridges, remote: d.Remote, acl: d.ServerACL, now: time.Now}
	if h.txnIDs == nil {
		h.txnIDs = d.Store
	}
	return h
}

// Event types and membership values the package names.
const (
	typeCreate            = "m.room.create"
	typeMember            = "m.room.member"
	typePowerLevels       = "m.room.power_levels"
	typeJoinRules         = "m.room.join_rules"
	typeHistoryVisibility = "m.room.history_visibility"
	typeGuestAccess       = "m.room.guest_access"
	typeName              = "m.room.name"
	typeTopic             = "m.room.topic"
	typeRedaction         = "m.room.redaction"

	membershipJoin   = "join"
	membershipInvite = "invite"
	membershipLeave  = "leave"
	membershipBan    = "ban"
	membershipKnock  = "knock"
)

// decode reads a JSON object request body within the configured limit.
func (h *Handlers) decode(r *http.Request, v any) error {
	return httputil.DecodeJSON(r, h.cfg.MaxRequestBytes, v)
}

// checkUserID validates a user id given by a client (invitee, kick or ban
// target): 400 M_INVALID_PARAM when it is not one.
func checkUserID(field, userID string) (*spec.UserID, error) {
	if userID == "" {
		return nil, httputil.MissingParam("%s is required", field)
	}
	u, err := spec.NewUserID(userID, true)
	if err != nil {
		return nil, httputil.InvalidParam("%s is not a valid user id", field)
	}
	return u, nil
}

// writeError turns a roomserver error on a write path into the client's
// Matrix error: an auth rule's refusal is 403 M_FORBIDDEN with its reason,
// an oversized event 413 M_TOO_LARGE, a malformed one 400 M_BAD_JSON, an
// unknown room notFound (the caller's choice of answer). The room's
// policy server refusing the event is 400 with the policy server's own
// errcode and error (spec v1.18: given to the client verbatim), one that
// could not be asked 502 M_UNKNOWN. Anything else is wrapped with step
// and ends as 500.
func writeError(step string, err error, notFound error) error {
	var na *api.NotAllowedError
	var refused *api.PolicyRefusedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &na):
		return httputil.Forbidden("%s", na.Reason)
	case errors.As(err, &refused):
		return (&httputil.Error{Code: httputil.Code(refused.ErrCode), Message: refused.Message}).WithStatus(http.StatusBadRequest)
	case errors.Is(err, api.ErrPolicyServerUnavailable):
		return httputil.Errorf(httputil.CodeUnknown, "%v", api.ErrPolicyServerUnavailable).WithStatus(http.StatusBadGateway)
	case errors.Is(err, api.ErrTooLarge):
		return httputil.Errorf(httputil.CodeTooLarge, "event is larger than %d bytes", api.MaxEventBytes)
	case errors.Is(err, api.ErrInvalidEvent):
		return httputil.BadJSON("%v", err)
	case errors.Is(err, api.ErrUnsupportedVersion):
		return httputil.Errorf(httputil.CodeUnsupportedRoom, "unsupported room version")
	case errors.Is(err, api.ErrRoomNotFound):
		return notFound
	}
	return fmt.Errorf("%s: %w", step, err)
}

// errNotInRoom is the answer to a user who may not see a room at all:
// never a member (or has forgotten it) of a room that is not world
// readable, or a room this server does not know (the two are answered
// alike so that room ids cannot be probed).
func errNotInRoom() error { return httputil.Forbidden("you are not in this room") }

// checkContent checks that an event's content is a JSON object no larger
// than an event may be: the early size check, before the roomserver
// measures the whole PDU.
func checkContent(body []byte) (json.RawMessage, error) {
	if len(body) > api.MaxEventBytes {
		return nil, httputil.Errorf(httputil.CodeTooLarge, "event is larger than %d bytes", api.MaxEventBytes)
	}
	var obj map[string]json.RawMessage
	if err := httputil.UnmarshalBody(body, &obj); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return json.RawMessage("{}"), nil
	}
	return json.RawMessage(body), nil
}

// readContent reads a request body that is an event's content.
func (h *Handlers) readContent(r *http.Request) (json.RawMessage, error) {
	body, err := httputil.ReadBody(r, h.cfg.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	return checkContent(body)
}

// send sends a local event and maps the roomserver's errors; an unknown
// room is 403 like a room the sender is not in.
func (h *Handlers) send(ctx context.Context, roomID string, ev api.ProtoEvent) (api.Event, error) {
	if err := h.checkEncryptionKept(ctx, roomID, ev); err != nil {
		return api.Event{}, err
	}
	out, err := h.rooms.Send(ctx, roomID, ev)
	if err != nil {
		return api.Event{}, writeError("send event", err, errNotInRoom())
	}
	return out, nil
}

// SendAs sends ev, an event of a local user, with the checks of PUT
// /send and /state, and returns once /sync has it (within syncWait): for
// delayed events, sent when their time comes.
func (h *Handlers) SendAs(ctx context.Context, roomID string, ev api.ProtoEvent) (string, error) {
	out, err := h.send(ctx, roomID, ev)
	if err != nil {
		return "", err
	}
	h.awaitSync(ctx, out)
	return out.EventID, nil
}

// awaitSync waits, within syncWait, for /sync to have ev (an empty ev,
// from a retried transaction, needs no wait). Handlers call it once the
// event's transaction id is recorded, so that the sender's sync shows it.
func (h *Handlers) awaitSync(ctx context.Context, ev api.Event) {
	if h.synced != nil && ev.EventID != "" {
		h.synced.WaitForEvent(ctx, ev.RoomID, ev.StreamPos, syncWait)
	}
}

// stateKeyPtr returns a pointer to a copy of k.
func stateKeyPtr(k string) *string { return &k }

// newFormatter returns a formatter for dev's view of evs (see
// events.NewFormatter).
func (h *Handlers) newFormatter(ctx context.Context, dev hsapi.Device, evs ...[]events.Event) (*events.Formatter, error) {
	return events.NewFormatter(ctx, h.rooms, h.txnIDs, h.now(), dev, evs...)
}
