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
