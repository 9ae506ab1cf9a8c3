package homeserver

import (
	"github.com/go-chi/chi/v5"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// route is one line of the client-server API's route table.
type route struct {
	method, path string
	h            httputil.HandlerFunc
}

// Mount adds the client-server API's routes to r: one flat table for the
// open endpoints and one for those behind an access token. Paths are given
// under /_matrix/client/{v3,r0} unless they start with "/".
func (c *Component) Mount(r chi.Router) {
	a, i := c.account, c.info
	open := []route{
		{"GET", "/_matrix/client/versions", i.Versions},
		{"GET", "/.well-known/matrix/client", i.WellKnownClient},
		{"GET", "/.well-known/matrix/server", i.WellKnownServer},
		{"GET", "/_synapse/admin/v1/register", a.SharedSecretNonce},
		{"POST", "/_synapse/admin/v1/register", a.SharedSecretRegister},
		{"GET", "/_matrix/client/v1/register/m.login.registration_token/validity", a.TokenValidity},
		{"POST", "register", a.Register},
		{"GET", "register/available", a.Available},
		{"GET", "login", a.LoginFlows},
		{"POST", "login", a.Login},
		{"POST", "refresh", a.Refresh},
	}
	authed := []route{
		{"GET", "account/whoami", a.Whoami},
		{"POST", "logout", a.Logout},
		{"POST", "logout/all", a.LogoutAll},
		{"GET", "devices", a.Devices},
		{"GET", "devices/{deviceID}", a.Device},
		{"PUT", "devices/{deviceID}", a.UpdateDevice},
		{"DELETE", "devices/{deviceID}", a.DeleteDevice},
		{"POST", "delete_devices", a.DeleteDevices},
		{"POST", "account/password", a.ChangePassword},
		{"POST", "account/deactivate", a.Deactivate},
		{"GET", "account/3pid", a.ThreePIDs},
		{"GET", "capabilities", i.Capabilities},
		{"GET", "profile/{userID}", c.profile.Get},
		{"GET", "profile/{userID}/{keyName}", c.profile.GetField},
		{"PUT", "profile/{userID}/{keyName}", c.profile.Put},
		{"DELETE", "profile/{userID}/{keyName}", c.profile.Delete},
		{"GET", "voip/turnServer", c.calls.TURNServer},
		{"POST", "user/{userID}/openid/request_token", c.calls.RequestOpenIDToken},
		{"GET", "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", c.calls.RTCTransports},
	}
	if b := c.bridges; b != nil {
		authed = append(authed, []route{
			{"POST", "/_matrix/client/v1/appservice/{appserviceID}/ping", b.Ping},
			{"GET", "thirdparty/protocols", b.Protocols},
			{"GET", "thirdparty/protocol/{protocol}", b.Protocol},
			{"GET", "thirdparty/location/{protocol}", b.Location},
			{"GET", "thirdparty/user/{protocol}", b.User},
			{"GET", "thirdparty/location", b.LocationByAlias},
			{"GET", "thirdparty/user", b.UserByID},
		}...)
	} else {
		authed = append(authed, route{"GET", "thirdparty/protocols", i.ThirdPartyProtocols})
	}
	if rm := c.rooms; rm != nil {
		// PUT /send and /state with org.matrix.msc4140.delay are delayed
		// events (MSC4140).
		send, putState := c.delayed.Or(rm.Send, false), c.delayed.Or(rm.PutState, true)
		authed = append(authed, []route{
			{"GET", "/_matrix/client/unstable/org.matrix.msc4140/delayed_events", c.delayed.List},
			{"POST", "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/{delayID}", c.delayed.Update},
		}...)
		authed = append(authed, []route{
			{"POST", "createRoom", rm.CreateRoom},
			{"POST", "join/{roomIDOrAlias}", rm.JoinByIDOrAlias},
			{"POST", "rooms/{roomID}/join", rm.Join},
			{"POST", "rooms/{roomID}/invite", rm.Invite},
			{"POST", "rooms/{roomID}/leave", rm.Leave},
			{"POST", "rooms/{roomID}/forget", rm.Forget},
			{"POST", "rooms/{roomID}/kick", rm.Kick},
			{"POST", "rooms/{roomID}/ban", rm.Ban},
			{"POST", "rooms/{roomID}/unban", rm.Unban},
			{"PUT", "rooms/{roomID}/send/{eventType}/{txnID}", send},
			{"PUT", "rooms/{roomID}/redact/{eventID}/{txnID}", rm.Redact},
			{"GET", "rooms/{roomID}/state", rm.State},
			// A state key may be empty: with or without the last slash.
			{"GET", "rooms/{roomID}/state/{eventType}", rm.StateEvent},
			{"GET", "rooms/{roomID}/state/{eventType}/", rm.StateEvent},
			{"GET", "rooms/{roomID}/state/{eventType}/{stateKey}", rm.StateEvent},
			{"PUT", "rooms/{roomID}/state/{eventType}", putState},
			{"PUT", "rooms/{roomID}/state/{eventType}/", putState},
			{"PUT", "rooms/{roomID}/state/{eventType}/{stateKey}", putState},
			{"GET", "rooms/{roomID}/members", rm.Members},
			{"GET", "rooms/{roomID}/joined_members", rm.JoinedMembers},
			{"GET", "joined_rooms", rm.JoinedRooms},
			{"GET", "rooms/{roomID}/event/{eventID}", rm.Event},
			{"GET", "rooms/{roomID}/messages", rm.Messages},
			{"GET", "rooms/{roomID}/context/{eventID}", rm.Context},
			{"GET", "/_matrix/client/v1/rooms/{roomID}/relations/{eventID}", rm.Relations},
			{"GET", "/_matrix/client/v1/rooms/{roomID}/relations/{eventID}/{relType}", rm.Relations},
			{"GET", "/_matrix/client/v1/rooms/{roomID}/relations/{eventID}/{relType}/{eventType}", rm.Relations},
			{"GET", "/_matrix/client/v1/rooms/{roomID}/threads", rm.Threads},
			{"GET", "/_matrix/client/v1/rooms/{roomID}/timestamp_to_event", rm.TimestampToEvent},
		}...)
	}
	if u := c.userdir; u != nil {
		authed = append(authed, route{"POST", "user_directory/search", u.Search})
		if c.rooms != nil {
			authed = append(authed, route{"POST", "search", c.rooms.Search})
		}
	}
	if d := c.directory; d != nil {
		open = append(open, []route{
			{"GET", "directory/room/{roomAlias}", d.GetAlias},
			{"GET", "directory/list/room/{roomID}", d.GetVisibility},
			{"GET", "publicRooms", d.PublicRooms},
		}...)
		authed = append(authed, []route{
			{"PUT", "directory/room/{roomAlias}", d.SetAlias},
			{"DELETE", "directory/room/{roomAlias}", d.DeleteAlias},
			{"GET", "rooms/{roomID}/aliases", d.RoomAliases},
			{"PUT", "directory/list/room/{roomID}", d.SetVisibility},
			{"PUT", "directory/list/appservice/{networkID}/{roomID}", d.SetAppServiceVisibility},
			{"POST", "publicRooms", d.PublicRoomsFiltered},
		}...)
	}
	if rm := c.rooms; rm != nil {
		authed = append(authed, []route{
			{"POST", "rooms/{roomID}/upgrade", rm.Upgrade},
			{"POST", "knock/{roomIDOrAlias}", rm.Knock},
			{"GET", "/_matrix/client/v1/rooms/{roomID}/hierarchy", c.spaces.Hierarchy},
			{"GET", "/_matrix/client/v1/room_summary/{roomIDOrAlias}", c.spaces.RoomSummary},
			{"POST", "rooms/{roomID}/report", c.reports.ReportRoom},
			{"POST", "rooms/{roomID}/report/{eventID}", c.reports.ReportEvent},
		}...)
	}
	if sy := c.sync; sy != nil {
		ad, ep := c.accountData, c.ephemeral
		authed = append(authed, []route{
			{"GET", "sync", sy.Sync},
			{"POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", c.slidingSync.Sync},
			{"POST", "user/{userID}/filter", sy.PutFilter},
			{"GET", "user/{userID}/filter/{filterID}", sy.GetFilter},
			{"PUT", "user/{userID}/account_data/{type}", ad.PutGlobal},
			{"GET", "user/{userID}/account_data/{type}", ad.GetGlobal},
			{"PUT", "user/{userID}/rooms/{roomID}/account_data/{type}", ad.PutRoom},
			{"GET", "user/{userID}/rooms/{roomID}/account_data/{type}", ad.GetRoom},
			{"GET", "user/{userID}/rooms/{roomID}/tags", ad.GetTags},
			{"PUT", "user/{userID}/rooms/{roomID}/tags/{tag}", ad.PutTag},
			{"DELETE", "user/{userID}/rooms/{roomID}/tags/{tag}", ad.DeleteTag},
			{"PUT", "rooms/{roomID}/typing/{userID}", ep.SetTyping},
			{"POST", "rooms/{roomID}/receipt/{receiptType}/{eventID}", ep.Receipt},
			{"POST", "rooms/{roomID}/read_markers", ep.ReadMarkers},
			{"PUT", "presence/{userID}/status", ep.SetPresence},
			{"GET", "presence/{userID}/status", ep.GetPresence},
		}...)
	}
	if k := c.keys; k != nil {
		authed = append(authed, []route{
			{"POST", "keys/upload", k.Upload},
			{"POST", "keys/query", k.Query},
			{"POST", "keys/claim", k.Claim},
			{"GET", "keys/changes", k.Changes},
			{"PUT", "sendToDevice/{eventType}/{txnID}", k.SendToDevice},
			{"POST", "keys/device_signing/upload", k.UploadSigningKeys},
			{"POST", "keys/signatures/upload", k.UploadSignatures},
			{"POST", "room_keys/version", k.CreateBackupVersion},
			{"GET", "room_keys/version", k.BackupVersion},
			{"GET", "room_keys/version/{version}", k.BackupVersion},
			{"PUT", "room_keys/version/{version}", k.UpdateBackupVersion},
			{"DELETE", "room_keys/version/{version}", k.DeleteBackupVersion},
			{"GET", "room_keys/keys", k.BackupKeys},
			{"PUT", "room_keys/keys", k.PutBackupKeys},
			{"DELETE", "room_keys/keys", k.DeleteBackupKeys},
			{"GET", "room_keys/keys/{roomID}", k.BackupKeys},
			{"PUT", "room_keys/keys/{roomID}", k.PutBackupKeys},
			{"DELETE", "room_keys/keys/{roomID}", k.DeleteBackupKeys},
			{"GET", "room_keys/keys/{roomID}/{sessionID}", k.BackupKeys},
			{"PUT", "room_keys/keys/{roomID}/{sessionID}", k.PutBackupKeys},
			{"DELETE", "room_keys/keys/{roomID}/{sessionID}", k.DeleteBackupKeys},
		}...)
	}
	if p := c.push; p != nil {
		h := p.Handlers()
		authed = append(authed, []route{
			{"GET", "pushrules/", h.GetRules},
			{"GET", "pushrules", h.GetRules},
			{"GET", "pushrules/global/", h.GetGlobalRules},
			{"GET", "pushrules/global/{kind}/{ruleID}", h.GetRule},
			{"PUT", "pushrules/global/{kind}/{ruleID}", h.PutRule},
			{"DELETE", "pushrules/global/{kind}/{ruleID}", h.DeleteRule},
			{"GET", "pushrules/global/{kind}/{ruleID}/enabled", h.GetEnabled},
			{"PUT", "pushrules/global/{kind}/{ruleID}/enabled", h.PutEnabled},
			{"GET", "pushrules/global/{kind}/{ruleID}/actions", h.GetActions},
			{"PUT", "pushrules/global/{kind}/{ruleID}/actions", h.PutActions},
			{"GET", "notifications", h.Notifications},
			{"GET", "pushers", h.GetPushers},
			{"POST", "pushers/set", h.SetPusher},
		}...)
	}
	mount(r, open)
	r.Group(func(r chi.Router) {
		r.Use(c.auth.Require)
		mount(r, authed)
	})
}

// clientPrefixes are the path prefixes a relative route is served under:
// v3 and its predecessor r0, which some clients and bridges still call.
var clientPrefixes = []string{"/_matrix/client/v3/", "/_matrix/client/r0/"}

func mount(r chi.Router, routes []route) {
	for _, rt := range routes {
		h := httputil.Handle(rt.h)
		if rt.path[0] == '/' {
			r.Method(rt.method, rt.path, h)
			continue
		}
		for _, p := range clientPrefixes {
			r.Method(rt.method, p+rt.path, h)
		}
	}
}
