// Package api is the homeserver (client-server API) component's face to the
// other components: the types and interfaces they may use, and nothing else.
// In one process a caller holds the component itself; split across
// processes it holds homeserver/remote's NATS client of the same interface.
package api

import (
	"context"
	"encoding/json"
	"errors"
)

// Device is an authenticated session: who the access token belongs to.
type Device struct {
	// UserID is the full Matrix user id, @local:server.
	UserID string `json:"user_id"`
	// DeviceID is the device the token was issued to.
	DeviceID string `json:"device_id"`
	// IsAdmin says the account is a server admin.
	IsAdmin bool `json:"is_admin,omitempty"`
	// AppServiceID is set when the token is an application service's.
	AppServiceID string `json:"appservice_id,omitempty"`
}

// TokenQuerier resolves access tokens. The media component asks it, over
// the bus when it runs in its own process, whether a request may proceed.
type TokenQuerier interface {
	// QueryAccessToken returns the device the token belongs to, or
	// ErrUnknownToken / ErrSoftLogout.
	QueryAccessToken(ctx context.Context, token string) (Device, error)
}

// Errors of TokenQuerier, which both transports preserve.
var (
	// ErrUnknownToken: the token does not exist (never issued, logged out,
	// or the device was deleted); the client must log in again.
	ErrUnknownToken = errors.New("unknown access token")
	// ErrSoftLogout: the token expired; the client may refresh it or log
	// in again to the same device (soft_logout true).
	ErrSoftLogout = errors.New("access token expired")
)

// OpenIDQuerier resolves OpenID tokens (POST
// /user/{userId}/openid/request_token) for the federation API's
// /openid/userinfo, which services such as Element Call's LiveKit JWT
// service call to learn who a token belongs to.
type OpenIDQuerier interface {
	// QueryOpenIDToken returns the user id the unexpired token was issued
	// to, or ErrUnknownToken.
	QueryOpenIDToken(ctx context.Context, token string) (string, error)
}

// EDU is an ephemeral event the client component publishes on the bus
// (typing, receipts, presence, to-device messages) for the application
// services that asked for them (MSC2409), in the form the Application
// Service API carries it.
type EDU struct {
	// Type is m.typing, m.receipt, m.presence, or a to-device type.
	Type string `json:"type"`
	// RoomID is set for typing and receipts.
	RoomID string `json:"room_id,omitempty"`
	// Sender is set for presence and to-device messages.
	Sender string `json:"sender,omitempty"`
	// ToUserID and ToDeviceID are a to-device message's recipient.
	ToUserID   string `json:"to_user_id,omitempty"`
	ToDeviceID string `json:"to_device_id,omitempty"`
	// Content is the event's content.
	Content json.RawMessage `json:"content"`
}

// Types of the EDUs that are not events in the Application Service API
// but fields of a transaction (MSC3202, for encrypted bridges).
const (
	// EDUDeviceListUpdate: Sender's devices changed.
	EDUDeviceListUpdate = "m.device_list_update"
	// EDUKeyCounts: the one-time and unused fallback key counts of
	// ToUserID's device ToDeviceID; Content is KeyCounts.
	EDUKeyCounts = "org.matrix.msc3202.device_one_time_keys_count"
)

// KeyCounts is the content of an EDUKeyCounts.
type KeyCounts struct {
	OneTimeKeys    map[string]int `json:"one_time_keys"`
	UnusedFallback []string       `json:"unused_fallback"`
}

// KeysQueryResult is a server's answer to a key query for its users (the
// device_keys, master_keys and self_signing_keys of /keys/query and of
// federation's /user/keys/query).
type KeysQueryResult struct {
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys,omitempty"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys,omitempty"`
}

// RemoteKeys asks other servers for their users' keys (federation's
// /user/keys/query and /user/keys/claim). Each method answers for one
// server; an error puts that server in the client's failures.
type RemoteKeys interface {
	// QueryKeys asks server for the keys of users (user id → device ids,
	// empty for all).
	QueryKeys(ctx context.Context, server string, users map[string][]string) (KeysQueryResult, error)
	// ClaimKeys claims one-time keys (user → device → algorithm) and returns
	// user → device → key id → key.
	ClaimKeys(ctx context.Context, server string, claims map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error)
	// QueryDevices asks userID's server for the user's whole device list
	// (federation /user/devices).
	QueryDevices(ctx context.Context, userID string) (UserDevices, error)
}

// RemoteToDevice sends to-device messages to another server's users (the
// m.direct_to_device EDU). messages maps user → device (or "*") →
// content; messageID makes the delivery idempotent.
type RemoteToDevice interface {
	SendToDevice(ctx context.Context, server, sender, eventType, messageID string, messages map[string]map[string]json.RawMessage) error
}

// UserDevices is the answer to federation's /user/devices/{userId}.
type UserDevices struct {
	UserID         string          `json:"user_id"`
	StreamID       int64           `json:"stream_id"`
	Devices        []UserDevice    `json:"devices"`
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
}

// UserDevice is one device of UserDevices.
type UserDevice struct {
	DeviceID string          `json:"device_id"`
	Keys     json.RawMessage `json:"keys,omitempty"`
}

// Errors of KeyServer.
var (
	// ErrNotLocal: the user is not one of this server's.
	ErrNotLocal = errors.New("not a user of this server")
	// ErrTooLarge: the request asks for more than the limits allow.
	ErrTooLarge = errors.New("request too large")
)

// KeyServer answers other servers about this server's users' end-to-end
// encryption keys and delivers their to-device messages: what the
// federation component asks of the client component.
type KeyServer interface {
	// QueryLocalKeys answers /user/keys/query for local users.
	QueryLocalKeys(ctx context.Context, users map[string][]string) (KeysQueryResult, error)
	// ClaimLocalKeys answers /user/keys/claim for local users.
	ClaimLocalKeys(ctx context.Context, claims map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error)
	// LocalUserDevices answers /user/devices/{userId}.
	LocalUserDevices(ctx context.Context, userID string) (UserDevices, error)
	// ReceiveToDevice delivers an m.direct_to_device EDU from sender (a
	// remote user) to local devices, once per messageID.
	ReceiveToDevice(ctx context.Context, sender, eventType, messageID string, messages map[string]map[string]json.RawMessage) error
	// ReceiveDeviceListUpdate records a change of a remote user's device
	// (m.device_list_update).
	ReceiveDeviceListUpdate(ctx context.Context, update RemoteDeviceListUpdate) error
	// ReceiveSigningKeyUpdate records a change of a remote user's
	// cross-signing keys (m.signing_key_update); nil keys are unchanged.
	ReceiveSigningKeyUpdate(ctx context.Context, userID string, masterKey, selfSigningKey json.RawMessage) error
}

// RemoteDeviceListUpdate is another server's m.device_list_update EDU.
type RemoteDeviceListUpdate struct {
	UserID   string
	DeviceID string
	// StreamID orders the user's changes; PrevIDs are the stream ids of
	// the changes just before it, for the receiver to see a gap.
	StreamID int64
	PrevIDs  []int64
	Deleted  bool
	// Keys are the device's signed device_keys (empty when deleted or
	// not given).
	Keys json.RawMessage
}

// DeviceListUpdate is a change of a local user's devices or cross-signing
// keys, at StreamID of the device-list stream.
type DeviceListUpdate struct {
	UserID   string
	DeviceID string
	StreamID int64
	// PrevStreamID is the stream id of the user's change before this one
	// (0 for none): a server that missed it asks for the whole list.
	PrevStreamID int64
	Deleted      bool
	// DisplayName and Keys (the device's signed device_keys) describe the
	// device as it is now; empty when deleted or without keys.
	DisplayName string
	Keys        json.RawMessage
	// MasterKey and SelfSigningKey are set, as they are now, when the
	// change was of the user's cross-signing keys (DeviceID then names
	// one of them): other servers hear of it as an m.signing_key_update.
	MasterKey, SelfSigningKey json.RawMessage
}

// CrossSigning reports whether u is a change of the user's cross-signing
// keys rather than of a device.
func (u DeviceListUpdate) CrossSigning() bool {
	return len(u.MasterKey) > 0 || len(u.SelfSigningKey) > 0
}

// DeviceListSender tells the servers that share a room with a local user
// of a change of their devices (m.device_list_update EDUs); the
// federation component implements it.
type DeviceListSender interface {
	SendDeviceListUpdate(ctx context.Context, update DeviceListUpdate) error
}

// EDUSender tells other servers of local users' typing, public read
// receipts and presence (m.typing, m.receipt and m.presence EDUs); the
// federation component implements it.
type EDUSender interface {
	SendTyping(ctx context.Context, roomID, userID string, typing bool, timeoutMS int64) error
	SendReceipt(ctx context.Context, roomID, userID, receiptType, threadID, eventID string, ts int64) error
	SendPresence(ctx context.Context, p Presence) error
}

// Presence is a user's presence as servers tell each other of it.
type Presence struct {
	UserID string
	// State is online, unavailable or offline.
	State           string
	StatusMsg       string
	LastActiveAgoMS int64
	CurrentlyActive bool
}

// EDUReceiver takes other servers' users' typing, read receipts and
// presence, which the federation component checked came from the users'
// own server.
type EDUReceiver interface {
	ReceiveTyping(ctx context.Context, roomID, userID string, typing bool) error
	ReceiveReceipt(ctx context.Context, roomID, userID, receiptType, threadID, eventID string, ts int64) error
	ReceivePresence(ctx context.Context, p Presence) error
}

// ErrNotFound: what was asked for does not exist (a profile, a field).
var ErrNotFound = errors.New("not found")

// RemoteProfiles looks up other servers' users' profiles (federation's
// /query/profile); the federation component implements it.
type RemoteProfiles interface {
	// QueryProfile returns userID's profile fields (field alone when not
	// empty), or ErrNotFound when the user's server says there is none.
	QueryProfile(ctx context.Context, userID, field string) (map[string]json.RawMessage, error)
}

// ProfileServer answers other servers' profile queries about local users.
type ProfileServer interface {
	// LocalProfile returns a local user's profile fields (field alone
	// when not empty), ErrNotLocal or ErrNotFound.
	LocalProfile(ctx context.Context, userID, field string) (map[string]json.RawMessage, error)
}
