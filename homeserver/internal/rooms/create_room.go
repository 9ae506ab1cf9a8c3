package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// createRoomRequest is the body of POST /createRoom.
type createRoomRequest struct {
	Visibility                string                     `json:"visibility"`
	RoomAliasName             string                     `json:"room_alias_name"`
	Name                      *string                    `json:"name"`
	Topic                     *string                    `json:"topic"`
	Invite                    []string                   `json:"invite"`
	Invite3PID                []json.RawMessage          `json:"invite_3pid"`
	RoomVersion               string                     `json:"room_version"`
	CreationContent           map[string]json.RawMessage `json:"creation_content"`
	InitialState              []initialStateEvent        `json:"initial_state"`
	Preset                    string                     `json:"preset"`
	IsDirect                  bool                       `json:"is_direct"`
	PowerLevelContentOverride map[string]json.RawMessage `json:"power_level_content_override"`
	// defaultEncryption applies the encryption policy's default
	// (encryption.go): set for createRoom, not for room upgrades, which
	// copy the old room's state as it is.
	defaultEncryption bool
}

// initialStateEvent is one entry of createRoom's initial_state.
type initialStateEvent struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// preset is what a createRoom preset sets (the spec's table).
type preset struct {
	joinRule, historyVisibility, guestAccess string
	// inviteesAreCreators gives the invitees the creator's power: 100 in
	// power_levels.users before room version 12, a place among the
	// additional_creators from 12 on.
	inviteesAreCreators bool
	// everyoneInvites lowers the invite level to 0, as Synapse does for
	// private chats.
	everyoneInvites bool
}

var presets = map[string]preset{
	"private_chat":         {joinRule: "invite", historyVisibility: visShared, guestAccess: "can_join", everyoneInvites: true},
	"trusted_private_chat": {joinRule: "invite", historyVisibility: visShared, guestAccess: "can_join", everyoneInvites: true, inviteesAreCreators: true},
	"public_chat":          {joinRule: "public", historyVisibility: visShared, guestAccess: "forbidden"},
}

// CreateRoom is POST /createRoom. It builds the whole room as one
// CreateRoomRequest, in the spec's order: the creator's join, power
// levels, the preset's join rules, history visibility and guest access
// (each unless initial_state sets it), initial_state, name and topic,
// then the invites. The roomserver commits it all or nothing.
//
// visibility is checked and otherwise ignored: there is no public room
// directory yet. room_alias_name and invite_3pid are refused for now.
func (h *Handlers) CreateRoom(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	var req createRoomRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	var alias string
	if req.RoomAliasName != "" && h.dir != nil {
		var err error
		if alias, err = h.dir.NewRoomAlias(r.Context(), req.RoomAliasName); err != nil {
			return nil, err
		}
	}
	req.defaultEncryption = true
	cr, err := h.buildCreateRoom(dev.UserID, req, alias)
	if err == nil {
		err = h.addProfiles(r.Context(), cr.Events)
	}
	if err != nil {
		return nil, err
	}
	roomID, eventIDs, err := h.rooms.CreateRoom(r.Context(), cr)
	var na *api.NotAllowedError
	switch {
	case errors.As(err, &na):
		// The spec's answer when the request's own state fails the auth
		// rules (say, a power level override that locks the creator out).
		return nil, httputil.Errorf(httputil.CodeInvalidRoomState, "the initial state is invalid: %s", na.Reason)
	case err != nil:
		return nil, writeError("create room", err, httputil.NotFound("room not found"))
	}
	if h.dir != nil {
		if err := h.dir.PublishNewRoom(r.Context(), roomID, dev.UserID, alias, req.Visibility == "public"); err != nil {
			return nil, err
		}
	}
	// Users of other servers are invited now, one by one, as Synapse
	// does: the room exists whatever their servers answer.
	invited := map[string]bool{}
	for _, inv := range req.Invite {
		if inv == dev.UserID || h.isLocalUser(inv) || invited[inv] {
			continue
		}
		invited[inv] = true
		extra := map[string]any{}
		if req.IsDirect {
			extra["is_direct"] = true
		}
		if err := h.inviteRemote(r.Context(), roomID, dev.UserID, inv, extra); err != nil {
			return nil, err
		}
	}
	if h.synced != nil && len(eventIDs) > 0 {
		if last, err := h.rooms.Event(r.Context(), eventIDs[len(eventIDs)-1]); err == nil {
			h.awaitSync(r.Context(), last)
		}
	}
	return map[string]string{"room_id": roomID}, nil
}

// addProfiles puts the display names and avatars of local users into the
// join and invite member events of a new room.
func (h *Handlers) addProfiles(ctx context.Context, evs []api.ProtoEvent) error {
	for i, ev := range evs {
		if ev.Type != typeMember || ev.StateKey == nil || !h.isLocal(*ev.StateKey) {
			continue
		}
		var content map[string]any
		if err := json.Unmarshal(ev.Content, &content); err != nil {
			return fmt.Errorf("read member event: %w", err)
		}
		extra := map[string]string{}
		if err := h.addProfile(ctx, *ev.StateKey, extra); err != nil {
			return err
		}
		if len(extra) == 0 {
			continue
		}
		for k, v := range extra {
			content[k] = v
		}
		raw, err := json.Marshal(content)
		if err != nil {
			return fmt.Errorf("encode member event: %w", err)
		}
		evs[i].Content = raw
	}
	return nil
}

// buildCreateRoom checks a createRoom request and turns it into the
// roomserver's request.
func (h *Handlers) buildCreateRoom(creator string, req createRoomRequest, alias string) (api.CreateRoomRequest, error) {
	if req.RoomAliasName != "" && alias == "" {
		return api.CreateRoomRequest{}, httputil.InvalidParam("room aliases are not supported yet")
	}
	if len(req.Invite3PID) > 0 {
		return api.CreateRoomRequest{}, httputil.InvalidParam("third-party invites are not supported: this server uses no identity server")
	}
	switch req.Visibility {
	case "", "private", "public":
	default:
		return api.CreateRoomRequest{}, httputil.InvalidParam("visibility must be public or private")
	}
	presetName := req.Preset
	if presetName == "" {
		presetName = "private_chat"
		if req.Visibility == "public" {
			presetName = "public_chat"
		}
	}
	p, ok := presets[presetName]
	if !ok {
		return api.CreateRoomRequest{}, httputil.InvalidParam("unknown preset %q", req.Preset)
	}
	version := req.RoomVersion
	if version == "" {
		version = h.global.DefaultRoomVersion
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
	if err != nil || !v.Stable() {
		return api.CreateRoomRequest{}, httputil.Errorf(httputil.CodeUnsupportedRoom, "room version %q is not supported", version)
	}
	privileged := v.PrivilegedCreators()

	invitees, err := h.invitees(creator, req.Invite)
	if err != nil {
		return api.CreateRoomRequest{}, err
	}

	// The create event's content: the client's, less the keys the server
	// owns (the roomserver adds room_version, and creator where the room
	// version wants one).
	createContent := map[string]json.RawMessage{}
	for k, val := range req.CreationContent {
		if k != "creator" && k != "room_version" {
			createContent[k] = val
		}
	}
	creators := map[string]bool{creator: true}
	if privileged {
		additional, err := additionalCreators(createContent["additional_creators"])
		if err != nil {
			return api.CreateRoomRequest{}, err
		}
		if p.inviteesAreCreators {
			additional = appendUnique(additional, invitees...)
		}
		// The creator is a creator already; listing it again would only
		// confuse other servers.
		additional = removeValue(additional, creator)
		for _, c := range additional {
			creators[c] = true
		}
		if len(additional) > 0 {
			raw, err := json.Marshal(additional)
			if err != nil {
				return api.CreateRoomRequest{}, fmt.Errorf("encode additional creators: %w", err)
			}
			createContent["additional_creators"] = raw
		} else {
			delete(createContent, "additional_creators")
		}
	}
	rawCreate, err := json.Marshal(createContent)
	if err != nil {
		return api.CreateRoomRequest{}, fmt.Errorf("encode creation content: %w", err)
	}

	// initial_state, checked; its power levels (if any) replace the
	// default ones as the base the override applies to.
	initial := make([]api.ProtoEvent, 0, len(req.InitialState))
	inInitial := map[api.StateKey]bool{}
	var plBase map[string]json.RawMessage
	for i, s := range req.InitialState {
		if s.Type == "" {
			return api.CreateRoomRequest{}, httputil.BadJSON("initial_state[%d] has no type", i)
		}
		if !isObject(s.Content) {
			return api.CreateRoomRequest{}, httputil.BadJSON("initial_state[%d].content must be an object", i)
		}
		if s.Type == typePowerLevels && s.StateKey == "" {
			if err := json.Unmarshal(s.Content, &plBase); err != nil {
				return api.CreateRoomRequest{}, httputil.BadJSON("initial_state[%d].content must be an object", i)
			}
			continue
		}
		inInitial[api.StateKey{Type: s.Type, StateKey: s.StateKey}] = true
		initial = append(initial, api.ProtoEvent{Type: s.Type, StateKey: stateKeyPtr(s.StateKey), Sender: creator, Content: s.Content})
	}

	powerLevels, err := powerLevelsContent(plBase, req.PowerLevelContentOverride, p, privileged, creator, invitees, creators)
	if err != nil {
		return api.CreateRoomRequest{}, err
	}

	state := func(typ string, content any) (api.ProtoEvent, error) {
		raw, err := json.Marshal(content)
		if err != nil {
			return api.ProtoEvent{}, fmt.Errorf("encode %s: %w", typ, err)
		}
		return api.ProtoEvent{Type: typ, StateKey: stateKeyPtr(""), Sender: creator, Content: raw}, nil
	}
	var events []api.ProtoEvent
	add := func(typ string, content any) error {
		ev, err := state(typ, content)
		if err == nil {
			events = append(events, ev)
		}
		return err
	}
	events = append(events, api.ProtoEvent{Type: typeMember, StateKey: stateKeyPtr(creator), Sender: creator,
		Content: json.RawMessage(`{"membership":"join"}`)})
	events = append(events, api.ProtoEvent{Type: typePowerLevels, StateKey: stateKeyPtr(""), Sender: creator, Content: powerLevels})
	if alias != "" {
		if err := add("m.room.canonical_alias", map[string]string{"alias": alias}); err != nil {
			return api.CreateRoomRequest{}, err
		}
	}
	for _, ps := range []struct {
		typ, key, value string
	}{
		{typeJoinRules, "join_rule", p.joinRule},
		{typeHistoryVisibility, "history_visibility", p.historyVisibility},
		{typeGuestAccess, "guest_access", p.guestAccess},
	} {
		if inInitial[api.StateKey{Type: ps.typ}] {
			continue
		}
		if err := add(ps.typ, map[string]string{ps.key: ps.value}); err != nil {
			return api.CreateRoomRequest{}, err
		}
	}
	if len(h.acl) > 0 && !inInitial[api.StateKey{Type: typeServerACL}] {
		// A closed federation: the room says so itself, so that servers
		// outside the list are refused by every server in it.
		// IP literals are refused unless the list names one (a server
		// named by its address, as in tests on loopback): the spec checks
		// allow_ip_literals before the allow list.
		acl := map[string]any{"allow": h.acl, "deny": []string{}, "allow_ip_literals": slices.ContainsFunc(h.acl, isIPLiteral)}
		if err := add(typeServerACL, acl); err != nil {
			return api.CreateRoomRequest{}, err
		}
	}
	if req.defaultEncryption {
		enc, err := h.newRoomEncryption(presetName, req.InitialState)
		if err != nil {
			return api.CreateRoomRequest{}, err
		}
		if enc != nil {
			events = append(events, api.ProtoEvent{Type: typeEncryption, StateKey: stateKeyPtr(""), Sender: creator, Content: enc})
		}
	}
	events = append(events, initial...)
	if req.Name != nil {
		if err := add(typeName, map[string]string{"name": *req.Name}); err != nil {
			return api.CreateRoomRequest{}, err
		}
	}
	if req.Topic != nil {
		// The plain topic, and the same as the text/plain representation
		// of the m.topic content block (spec v1.15).
		topic := map[string]any{
			"topic":   *req.Topic,
			"m.topic": map[string]any{"m.text": []map[string]string{{"body": *req.Topic, "mimetype": "text/plain"}}},
		}
		if err := add(typeTopic, topic); err != nil {
			return api.CreateRoomRequest{}, err
		}
	}
	for _, inv := range invitees {
		if !h.isLocalUser(inv) {
			// Invited over federation once the room exists
			// (CreateRoom): the invitee's server must sign the event.
			continue
		}
		content := map[string]any{"membership": membershipInvite}
		if req.IsDirect {
			content["is_direct"] = true
		}
		raw, err := json.Marshal(content)
		if err != nil {
			return api.CreateRoomRequest{}, fmt.Errorf("encode invite: %w", err)
		}
		events = append(events, api.ProtoEvent{Type: typeMember, StateKey: stateKeyPtr(inv), Sender: creator, Content: raw})
	}
	return api.CreateRoomRequest{RoomVersion: version, Creator: creator, CreateContent: rawCreate, Events: events}, nil
}

// invitees checks createRoom's invite list: valid user ids (of other
// servers only when federation is there to invite them), the creator and
// duplicates left out, order kept.
func (h *Handlers) invitees(creator string, list []string) ([]string, error) {
	var out []string
	for i, id := range list {
		u, err := checkUserID(fmt.Sprintf("invite[%d]", i), id)
		if err != nil {
			return nil, err
		}
		if string(u.Domain()) != h.global.ServerName && h.remote == nil {
			return nil, errRemoteInvite()
		}
		if id != creator {
			out = appendUnique(out, id)
		}
	}
	return out, nil
}

// isIPLiteral reports whether a server name is an IP address, with or
// without a port.
func isIPLiteral(serverName string) bool {
	host := serverName
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		host = h
	}
	return net.ParseIP(strings.Trim(host, "[]")) != nil
}

// typeServerACL is the server ACL's event type.
const typeServerACL = "m.room.server_acl"

// isLocalUser reports whether userID is one of this server's users.
func (h *Handlers) isLocalUser(userID string) bool {
	return strings.HasSuffix(userID, ":"+h.global.ServerName)
}

// errRemoteInvite refuses invites to users of other servers when
// federation cannot deliver them (the invitee's server must countersign).
func errRemoteInvite() error {
	return httputil.Forbidden("inviting users of other servers is not supported yet")
}

// additionalCreators reads creation_content.additional_creators: absent,
// or a list of user ids.
func additionalCreators(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, httputil.BadJSON("creation_content.additional_creators must be a list of user ids")
	}
	var out []string
	for i, id := range list {
		if _, err := checkUserID(fmt.Sprintf("creation_content.additional_creators[%d]", i), id); err != nil {
			return nil, err
		}
		out = appendUnique(out, id)
	}
	return out, nil
}

// defaultPowerLevels is Synapse's default m.room.power_levels content.
// Before room version 12 the creator (and, with trusted_private_chat, the
// invitees) get 100; from 12 on the creators have infinite power and must
// not be listed, and m.room.tombstone needs more than any listed user can
// have (150), as the spec asks.
func defaultPowerLevels(p preset, privileged bool, creator string, invitees []string) map[string]any {
	users := map[string]any{}
	tombstone := 100
	if privileged {
		tombstone = 150
	} else {
		users[creator] = 100
		if p.inviteesAreCreators {
			for _, inv := range invitees {
				users[inv] = 100
			}
		}
	}
	invite := 50
	if p.everyoneInvites {
		invite = 0
	}
	return map[string]any{
		"users":         users,
		"users_default": 0,
		"events": map[string]any{
			"m.room.name":               50,
			"m.room.power_levels":       100,
			"m.room.history_visibility": 100,
			"m.room.canonical_alias":    50,
			"m.room.avatar":             50,
			"m.room.tombstone":          tombstone,
			"m.room.server_acl":         100,
			"m.room.encryption":         100,
		},
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         invite,
	}
}

// powerLevelsContent is the room's first m.room.power_levels content: the
// default (or initial_state's, when given), with the override's top-level
// keys replacing the base's (as Synapse applies it). In room version 12
// the creators are then removed from users: the auth rules reject a
// power levels event that lists one, and a creator needs no entry.
func powerLevelsContent(base, override map[string]json.RawMessage, p preset, privileged bool, creator string, invitees []string, creators map[string]bool) (json.RawMessage, error) {
	merged := map[string]json.RawMessage{}
	if base == nil {
		for k, v := range defaultPowerLevels(p, privileged, creator, invitees) {
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("encode default power levels: %w", err)
			}
			merged[k] = raw
		}
	} else {
		for k, v := range base {
			merged[k] = v
		}
	}
	for k, v := range override {
		merged[k] = v
	}
	if privileged {
		if raw, ok := merged["users"]; ok {
			var users map[string]json.RawMessage
			if err := json.Unmarshal(raw, &users); err != nil {
				return nil, httputil.BadJSON("power levels users must be an object")
			}
			for c := range creators {
				delete(users, c)
			}
			fixed, err := json.Marshal(users)
			if err != nil {
				return nil, fmt.Errorf("encode power levels users: %w", err)
			}
			merged["users"] = fixed
		}
	}
	out, err := json.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("encode power levels: %w", err)
	}
	return out, nil
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// appendUnique appends those of vs not in list yet.
func appendUnique(list []string, vs ...string) []string {
	for _, v := range vs {
		found := false
		for _, have := range list {
			if have == v {
				found = true
				break
			}
		}
		if !found {
			list = append(list, v)
		}
	}
	return list
}

// removeValue returns list without v.
func removeValue(list []string, v string) []string {
	out := list[:0:0]
	for _, have := range list {
		if have != v {
			out = append(out, have)
		}
	}
	return out
}
