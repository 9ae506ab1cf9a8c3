// Package api is the appservices component's face to the other
// components: the questions the client API asks application services
// (bridges) and nothing else. cmd/ hands the client component the
// appservices component's Querier; it is stateless (HTTP calls to the
// bridges with their hs_token), so every process can build its own.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
)

// Querier asks the registered application services.
type Querier interface {
	// QueryUser asks the application services whose user namespace holds
	// userID whether it exists (GET /_matrix/app/v1/users/{userId}); an
	// application service that answers yes has created it. False when
	// none did.
	QueryUser(ctx context.Context, userID string) (bool, error)
	// QueryAlias asks the application services whose alias namespace
	// holds alias (GET /_matrix/app/v1/rooms/{alias}); one that answers
	// yes has created the room and the alias.
	QueryAlias(ctx context.Context, alias string) (bool, error)
	// Ping pings the application service id (POST /_matrix/app/v1/ping)
	// and returns how long it took to answer, in milliseconds. Errors are
	// *PingError or ErrUnknownAppService.
	Ping(ctx context.Context, id, txnID string) (int64, error)
	// Protocols returns the third-party protocols the application
	// services declare, each as the first of them describes it.
	Protocols(ctx context.Context) (map[string]json.RawMessage, error)
	// Protocol returns one protocol's description, or ErrUnknownProtocol.
	Protocol(ctx context.Context, protocol string) (json.RawMessage, error)
	// ThirdParty forwards a lookup (kind "location" or "user", protocol
	// empty for a reverse lookup by alias or user id) to the application
	// services declaring protocol (every one for a reverse lookup) and
	// returns the results of all of them.
	ThirdParty(ctx context.Context, kind, protocol string, query url.Values) ([]json.RawMessage, error)
}

// Errors of Querier.
var (
	// ErrUnknownAppService: no registration has that id.
	ErrUnknownAppService = errors.New("unknown application service")
	// ErrUnknownProtocol: no application service declares that protocol.
	ErrUnknownProtocol = errors.New("unknown third-party protocol")
)

// PingError is a ping that failed, with the spec's error code:
// M_URL_NOT_SET, M_BAD_STATUS (Status and Body are the bridge's answer),
// M_CONNECTION_TIMEOUT or M_CONNECTION_FAILED.
type PingError struct {
	Code   string
	Status int
	Body   string
}

// Error implements error.
func (e *PingError) Error() string { return "ping application service: " + e.Code }
