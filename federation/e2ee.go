package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// End-to-end encryption between servers: other servers' users' keys
// (asked for when a local client asks: keys are passed on as received, so
// that their signatures still check), ours for them, and to-device
// messages both ways (the m.direct_to_device EDU, through the outbound
// queue so that a message survives a restart and a dead server).

// eduDirectToDevice is the EDU type of to-device messages.
const eduDirectToDevice = "m.direct_to_device"

// directToDevice is the content of an m.direct_to_device EDU.
type directToDevice struct {
	Sender    string                                `json:"sender"`
	Type      string                                `json:"type"`
	MessageID string                                `json:"message_id"`
	Messages  map[string]map[string]json.RawMessage `json:"messages"`
}

// request sends a signed federation request to dest and decodes its
// answer into result.
func (c *Component) request(ctx context.Context, method, dest, path string, content, result any) error {
	fr := fclient.NewFederationRequest(method, c.serverName, spec.ServerName(dest), path)
	if content != nil {
		if err := fr.SetContent(content); err != nil {
			return err
		}
	}
	if err := fr.Sign(c.serverName, gomatrixserverlib.KeyID(c.keys.current.ID), c.keys.current.Private); err != nil {
		return err
	}
	hreq, err := fr.HTTPRequest()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return c.client.DoRequestAndParseResponse(rctx, hreq, result)
}

// QueryKeys implements hsapi.RemoteKeys.
func (c *Component) QueryKeys(ctx context.Context, server string, users map[string][]string) (hsapi.KeysQueryResult, error) {
	for u, devs := range users {
		if devs == nil {
			users[u] = []string{}
		}
	}
	var res hsapi.KeysQueryResult
	if err := c.request(ctx, "POST", server, "/_matrix/federation/v1/user/keys/query", map[string]any{"device_keys": users}, &res); err != nil {
		return hsapi.KeysQueryResult{}, fmt.Errorf("query keys on %s: %w", server, err)
	}
	return res, nil
}

// ClaimKeys implements hsapi.RemoteKeys.
func (c *Component) ClaimKeys(ctx context.Context, server string, claims map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error) {
	var res struct {
		OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
	}
	if err := c.request(ctx, "POST", server, "/_matrix/federation/v1/user/keys/claim", map[string]any{"one_time_keys": claims}, &res); err != nil {
		return nil, fmt.Errorf("claim keys on %s: %w", server, err)
	}
	return res.OneTimeKeys, nil
}

// SendToDevice implements hsapi.RemoteToDevice: the messages are queued
// for server as one m.direct_to_device EDU.
func (c *Component) SendToDevice(ctx context.Context, server, sender, eventType, messageID string, messages map[string]map[string]json.RawMessage) error {
	if c.sender == nil {
		return errors.New("no outbound queue")
	}
	if !c.cfg.ServerAllowed(server) {
		return fmt.Errorf("%s is not an allowed server", server)
	}
	content, err := json.Marshal(directToDevice{Sender: sender, Type: eventType, MessageID: messageID, Messages: messages})
	if err != nil {
		return fmt.Errorf("encode to-device messages: %w", err)
	}
	return c.sender.queueEDU(ctx, server, messageID, gomatrixserverlib.EDU{Type: eduDirectToDevice, Origin: string(c.serverName),
		Destination: server, Content: content})
}

// receiveToDevice hands an inbound m.direct_to_device EDU to the client
// component, when origin speaks for its sender.
func (c *Component) receiveToDevice(ctx context.Context, origin string, content json.RawMessage) error {
	var d directToDevice
	if err := json.Unmarshal(content, &d); err != nil || d.MessageID == "" || d.Type == "" {
		c.log.WithField(fieldOrigin, origin).Debug("dropping a malformed to-device EDU")
		return nil
	}
	if serverOf(d.Sender) != origin {
		c.log.WithField(fieldOrigin, origin).Info("dropping a to-device EDU for a sender of another server")
		return nil
	}
	if c.e2ee == nil {
		return nil
	}
	return c.e2ee.ReceiveToDevice(ctx, d.Sender, d.Type, d.MessageID, d.Messages)
}

// UserKeysQuery answers POST /_matrix/federation/v1/user/keys/query.
func (c *Component) UserKeysQuery(r *http.Request) (any, error) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := decodeContent(r, &req); err != nil {
		return nil, err
	}
	if req.DeviceKeys == nil {
		return nil, httputil.MissingParam("device_keys is required")
	}
	res, err := c.e2ee.QueryLocalKeys(r.Context(), req.DeviceKeys)
	if errors.Is(err, hsapi.ErrTooLarge) {
		return nil, httputil.InvalidParam("%v", err)
	}
	return res, err
}

// UserKeysClaim answers POST /_matrix/federation/v1/user/keys/claim.
func (c *Component) UserKeysClaim(r *http.Request) (any, error) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := decodeContent(r, &req); err != nil {
		return nil, err
	}
	if req.OneTimeKeys == nil {
		return nil, httputil.MissingParam("one_time_keys is required")
	}
	keys, err := c.e2ee.ClaimLocalKeys(r.Context(), req.OneTimeKeys)
	if errors.Is(err, hsapi.ErrTooLarge) {
		return nil, httputil.InvalidParam("%v", err)
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"one_time_keys": keys}, nil
}

// UserDevices answers GET /_matrix/federation/v1/user/devices/{userID}.
func (c *Component) UserDevices(r *http.Request) (any, error) {
	userID, err := url.PathUnescape(httputil.PathParam(r, "userID"))
	if err != nil {
		return nil, httputil.InvalidParam("bad user id")
	}
	res, err := c.e2ee.LocalUserDevices(r.Context(), userID)
	if errors.Is(err, hsapi.ErrNotLocal) {
		return nil, httputil.Errorf(httputil.CodeNotFound, "%s is not a user of this server", userID)
	}
	return res, err
}

// eduQueued is the id of an EDU in the outbound stream.
func eduQueued(dest, id string) string { return "edu " + id + " " + dest }

// queueEDU puts an EDU on dest's outbound queue; id (unique per EDU)
// keeps a retried publish from queueing it twice.
func (s *sender) queueEDU(ctx context.Context, dest, id string, edu gomatrixserverlib.EDU) error {
	if err := s.ensureDest(ctx, dest); err != nil {
		return err
	}
	raw, err := json.Marshal(edu)
	if err != nil {
		return fmt.Errorf("encode EDU: %w", err)
	}
	q := queuedPDU{Destination: dest, EDU: raw}
	return s.c.bus.Publish(ctx, bus.Subject(bus.SubjectFederationOutbound, destToken(dest)), eduQueued(dest, id), q)
}

// EDU types of device-list changes.
const (
	eduDeviceListUpdate = "m.device_list_update"
	eduSigningKeyUpdate = "m.signing_key_update"
)

// deviceListUpdate is the content of an m.device_list_update EDU.
type deviceListUpdate struct {
	UserID      string          `json:"user_id"`
	DeviceID    string          `json:"device_id"`
	DisplayName string          `json:"device_display_name,omitempty"`
	StreamID    int64           `json:"stream_id"`
	PrevID      []int64         `json:"prev_id"`
	Deleted     bool            `json:"deleted,omitempty"`
	Keys        json.RawMessage `json:"keys,omitempty"`
}

// deviceListEDU is the content of the m.device_list_update EDU telling
// of u: prev_id names the user's change before it, so that a server that
// keeps remote device lists (Synapse) applies the update in place when it
// had that one, and asks /user/devices for the whole list when it did
// not, instead of asking at every change (which an empty prev_id makes
// it do).
func deviceListEDU(u hsapi.DeviceListUpdate) ([]byte, error) {
	d := deviceListUpdate{UserID: u.UserID, DeviceID: u.DeviceID, DisplayName: u.DisplayName, StreamID: u.StreamID,
		PrevID: []int64{}, Deleted: u.Deleted}
	if u.PrevStreamID > 0 {
		d.PrevID = []int64{u.PrevStreamID}
	}
	if !u.Deleted && len(u.Keys) > 0 {
		d.Keys = u.Keys
	}
	return json.Marshal(d)
}

// userDestinations returns the allowed servers, other than this one, with
// members joined to a room userID is joined to.
func (c *Component) userDestinations(ctx context.Context, userID string) ([]string, error) {
	rooms, err := c.rooms.RoomsOf(ctx, userID, spec.Join)
	if err != nil {
		return nil, fmt.Errorf("rooms of %s: %w", userID, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range rooms {
		dests, err := c.roomDestinations(ctx, r)
		if err != nil {
			return nil, err
		}
		for _, d := range dests {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// SendDeviceListUpdate implements hsapi.DeviceListSender: the change is
// queued, as an m.device_list_update EDU (deviceListEDU), or as an
// m.signing_key_update for a change of cross-signing keys (as Synapse
// sends them), for every allowed server with members joined to a room
// the user is joined to. A change that names no device (the keys of a
// deactivated account dropped) is not sent: the deletions of its devices
// are, and the next change's prev_id makes servers ask for the list.
func (c *Component) SendDeviceListUpdate(ctx context.Context, u hsapi.DeviceListUpdate) error {
	if u.CrossSigning() {
		content, err := json.Marshal(signingKeyUpdate{UserID: u.UserID, MasterKey: u.MasterKey, SelfSigningKey: u.SelfSigningKey})
		if err != nil {
			return fmt.Errorf("encode a signing-key update: %w", err)
		}
		return c.queueUserEDU(ctx, u.UserID, eduSigningKeyUpdate, fmt.Sprintf("sk %s %d", u.UserID, u.StreamID), json.RawMessage(content))
	}
	if u.DeviceID == "" {
		return nil
	}
	content, err := deviceListEDU(u)
	if err != nil {
		return err
	}
	return c.queueUserEDU(ctx, u.UserID, eduDeviceListUpdate, fmt.Sprintf("dl %s %d", u.UserID, u.StreamID), json.RawMessage(content))
}

// receiveDeviceListUpdate hands an inbound m.device_list_update to the
// client component, when origin speaks for the user.
func (c *Component) receiveDeviceListUpdate(ctx context.Context, origin string, content json.RawMessage) error {
	var d deviceListUpdate
	if err := json.Unmarshal(content, &d); err != nil || d.UserID == "" || d.DeviceID == "" {
		return nil
	}
	if serverOf(d.UserID) != origin {
		c.log.WithField(fieldOrigin, origin).Info("dropping a device-list EDU for a user of another server")
		return nil
	}
	if c.e2ee == nil {
		return nil
	}
	return c.e2ee.ReceiveDeviceListUpdate(ctx, hsapi.RemoteDeviceListUpdate{UserID: d.UserID, DeviceID: d.DeviceID,
		StreamID: d.StreamID, PrevIDs: d.PrevID, Deleted: d.Deleted, Keys: d.Keys})
}

// signingKeyUpdate is the content of an m.signing_key_update EDU.
type signingKeyUpdate struct {
	UserID         string          `json:"user_id"`
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
}

// receiveSigningKeyUpdate hands an inbound m.signing_key_update to the
// client component, when origin speaks for the user.
func (c *Component) receiveSigningKeyUpdate(ctx context.Context, origin string, content json.RawMessage) error {
	var u signingKeyUpdate
	if err := json.Unmarshal(content, &u); err != nil || u.UserID == "" {
		return nil
	}
	if serverOf(u.UserID) != origin {
		c.log.WithField(fieldOrigin, origin).Info("dropping a signing-key EDU for a user of another server")
		return nil
	}
	master, selfSigning := keyOfUser(u.UserID, u.MasterKey), keyOfUser(u.UserID, u.SelfSigningKey)
	if c.e2ee == nil || (master == nil && selfSigning == nil) {
		return nil
	}
	return c.e2ee.ReceiveSigningKeyUpdate(ctx, u.UserID, master, selfSigning)
}

// keyOfUser returns key when it is a cross-signing key of userID (its
// user_id says so), nil otherwise: a key another user's EDU carries is
// not kept as theirs.
func keyOfUser(userID string, key json.RawMessage) json.RawMessage {
	var k struct {
		UserID string `json:"user_id"`
	}
	if len(key) == 0 || json.Unmarshal(key, &k) != nil || k.UserID != userID {
		return nil
	}
	return key
}

// QueryDevices implements hsapi.RemoteKeys.
func (c *Component) QueryDevices(ctx context.Context, userID string) (hsapi.UserDevices, error) {
	var out hsapi.UserDevices
	err := c.request(ctx, "GET", serverOf(userID), "/_matrix/federation/v1/user/devices/"+url.PathEscape(userID), nil, &out)
	if err != nil {
		return hsapi.UserDevices{}, fmt.Errorf("devices of %s: %w", userID, err)
	}
	if out.UserID != userID {
		return hsapi.UserDevices{}, fmt.Errorf("devices of %s: the answer is about %q", userID, out.UserID)
	}
	return out, nil
}
