// Package remote is the NATS transport of the homeserver component's api:
// ServeTokens answers on the bus for the component, and TokenClient asks it
// from another process, so that a component split out of the homeserver
// process (media, for one) holds the same api.TokenQuerier as one that
// runs alongside it.
//
// It sits between homeserver/api, whose interfaces it implements, and
// internal/bus; cmd/ chooses between the component itself and this client.
package remote

import (
	"context"

	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/bus"
)

// SubjectQueryOpenIDToken is the bus subject on which the homeserver
// component answers QueryOpenIDToken.
const SubjectQueryOpenIDToken = "homeserver.query.openid_token"

// SubjectQueryAccessToken is the bus subject (relative to the bus prefix)
// on which the homeserver component answers QueryAccessToken.
const SubjectQueryAccessToken = "homeserver.query.access_token"

// tokenRequest is QueryAccessToken's request on the bus. The token travels
// in clear: an external NATS must be reached over TLS or a private network.
type tokenRequest struct {
	Token string `json:"token"`
}

// tokenErrors maps the TokenQuerier's sentinel errors to their bus codes,
// the same table on both sides.
func tokenErrors() bus.ErrorCodes {
	return bus.ErrorCodes{
		"unknown_token": api.ErrUnknownToken,
		"soft_logout":   api.ErrSoftLogout,
	}
}

// ServeTokens answers QueryAccessToken requests on the bus with impl (the
// homeserver component's TokenQuerier), until stop is called or the bus
// closes. Several processes may serve at once; each request goes to one.
func ServeTokens(b *bus.Bus, impl api.TokenQuerier) (stop func(), err error) {
	query := func(ctx context.Context, req tokenRequest) (api.Device, error) {
		return impl.QueryAccessToken(ctx, req.Token)
	}
	return bus.Serve(b, SubjectQueryAccessToken, query, bus.WithErrors(tokenErrors()))
}

// ServeOpenID answers QueryOpenIDToken requests on the bus with impl, as
// ServeTokens does for access tokens.
func ServeOpenID(b *bus.Bus, impl api.OpenIDQuerier) (stop func(), err error) {
	query := func(ctx context.Context, req tokenRequest) (string, error) {
		return impl.QueryOpenIDToken(ctx, req.Token)
	}
	return bus.Serve(b, SubjectQueryOpenIDToken, query, bus.WithErrors(tokenErrors()))
}

// TokenClient is an api.TokenQuerier that asks, over the bus, whichever
// process serves ServeTokens.
type TokenClient struct {
	b *bus.Bus
}

// NewTokenClient returns a TokenQuerier that queries over b.
func NewTokenClient(b *bus.Bus) *TokenClient { return &TokenClient{b: b} }

// QueryAccessToken implements api.TokenQuerier: the device of token, or an
// error that errors.Is matches against api.ErrUnknownToken and
// api.ErrSoftLogout as the serving side returned them. It waits until ctx's
// deadline (bus.DefaultCallTimeout without one); bus.ErrNoResponders means
// no homeserver process is running.
func (c *TokenClient) QueryAccessToken(ctx context.Context, token string) (api.Device, error) {
	return bus.Call[tokenRequest, api.Device](ctx, c.b, SubjectQueryAccessToken, tokenRequest{Token: token}, bus.WithErrors(tokenErrors()))
}

// QueryOpenIDToken implements api.OpenIDQuerier over the bus, like
// QueryAccessToken.
func (c *TokenClient) QueryOpenIDToken(ctx context.Context, token string) (string, error) {
	return bus.Call[tokenRequest, string](ctx, c.b, SubjectQueryOpenIDToken, tokenRequest{Token: token}, bus.WithErrors(tokenErrors()))
}

var (
	_ api.TokenQuerier  = (*TokenClient)(nil)
	_ api.OpenIDQuerier = (*TokenClient)(nil)
)
