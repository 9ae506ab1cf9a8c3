// Package federation is the server-server API, in and out. It will own the
// server's signing keys and key notary, request signing and verification
// (X-Matrix), inbound /send transactions, joins, invites and backfill,
// per-destination outbound queues fed from the roomserver's output stream,
// and the allow-list of server names federation is limited to.
//
// Today it serves what other servers ask first: the server's version and
// its signed signing keys (/_matrix/key/v2/server). Only cmd/ builds it and
// puts its routes on the TLS federation listener.
package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/version"
)

// ServerSoftware is the server name reported by the version endpoint.
const ServerSoftware = "homeserver"

// Deps is what the federation component needs from cmd/.
type Deps struct {
	// Global holds the server name and the signing key.
	Global *config.Global
	// Config is the federation section.
	Config *config.Federation
	// DB will hold the federation tables (remote keys, outbound queues).
	DB *storage.DB
	// Log is already tagged with component=federation.
	Log *logrus.Entry
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// OpenID resolves the OpenID tokens of /openid/userinfo (the client
	// component); nil answers every token as unknown.
	OpenID hsapi.OpenIDQuerier
}

// Component is the server-server API.
type Component struct {
	serverName spec.ServerName
	key        config.SigningKey
	validity   time.Duration
	db         *storage.DB
	log        *logrus.Entry
	now        func() time.Time
	openID     hsapi.OpenIDQuerier
}

// New builds the component from the server's signing key; it fails when
// the key does not parse. It does no I/O.
func New(deps Deps) (*Component, error) {
	key, err := config.ParseSigningKey(deps.Global.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("federation: parse signing key: %w", err)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	return &Component{
		serverName: spec.ServerName(deps.Global.ServerName),
		key:        key,
		validity:   deps.Config.KeyValidity.Std(),
		db:         deps.DB,
		log:        deps.Log,
		now:        now,
		openID:     deps.OpenID,
	}, nil
}

// Start starts the federation's background work (none yet). Call it once,
// before serving requests.
func (c *Component) Start(ctx context.Context) error { return nil }

// Stop stops the background work Start began and waits for it.
func (c *Component) Stop(ctx context.Context) error { return nil }

// route is one line of the federation API's route table.
type route struct {
	method, path string
	h            httputil.HandlerFunc
}

// Mount adds the federation API's routes to r, which cmd/ serves on the
// TLS federation listener.
func (c *Component) Mount(r chi.Router) {
	routes := []route{
		{"GET", "/_matrix/federation/v1/version", c.Version},
		{"GET", "/_matrix/key/v2/server", c.ServerKeys},
		// Called by services that are not Matrix servers (Element Call's
		// LiveKit JWT service): no X-Matrix signature is asked for, and
		// the server allow-list must not apply to it.
		{"GET", "/_matrix/federation/v1/openid/userinfo", c.OpenIDUserInfo},
	}
	for _, rt := range routes {
		r.Method(rt.method, rt.path, httputil.Handle(rt.h))
	}
}

// OpenIDUserInfo answers GET /_matrix/federation/v1/openid/userinfo?access_token=
// with {"sub": user id} for an OpenID token this server issued and that
// has not expired; 401 M_UNKNOWN_TOKEN otherwise.
func (c *Component) OpenIDUserInfo(r *http.Request) (any, error) {
	token := r.URL.Query().Get("access_token")
	unknown := httputil.Errorf(httputil.CodeUnknownToken, "unknown or expired OpenID token")
	if token == "" || c.openID == nil {
		return nil, unknown
	}
	userID, err := c.openID.QueryOpenIDToken(r.Context(), token)
	if errors.Is(err, hsapi.ErrUnknownToken) {
		return nil, unknown
	}
	if err != nil {
		return nil, err
	}
	return map[string]string{"sub": userID}, nil
}

// versionResponse is the body of GET /_matrix/federation/v1/version.
type versionResponse struct {
	Server struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"server"`
}

// Version answers GET /_matrix/federation/v1/version with the server
// software's name and version.
func (c *Component) Version(r *http.Request) (any, error) {
	var v versionResponse
	v.Server.Name = ServerSoftware
	v.Server.Version = version.String()
	return v, nil
}

// ServerKeys answers GET /_matrix/key/v2/server with the server's current
// verify key, valid for the configured key validity from now, signed by
// that key so that other servers (and notaries) can check it.
func (c *Component) ServerKeys(r *http.Request) (any, error) {
	signed, err := c.SignedServerKeys()
	if err != nil {
		return nil, err
	}
	return json.RawMessage(signed), nil
}

// SignedServerKeys returns the server's key response as canonical JSON
// signed with its signing key. There are no old keys yet: the key in the
// configuration is the only one the server has ever had.
func (c *Component) SignedServerKeys() ([]byte, error) {
	keyID := gomatrixserverlib.KeyID(c.key.ID)
	fields := gomatrixserverlib.ServerKeyFields{
		ServerName: c.serverName,
		VerifyKeys: map[gomatrixserverlib.KeyID]gomatrixserverlib.VerifyKey{
			keyID: {Key: spec.Base64Bytes(c.key.Private.Public().(ed25519.PublicKey))},
		},
		ValidUntilTS:  spec.AsTimestamp(c.now().Add(c.validity)),
		OldVerifyKeys: map[gomatrixserverlib.KeyID]gomatrixserverlib.OldVerifyKey{},
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode server keys: %w", err)
	}
	signed, err := gomatrixserverlib.SignJSON(string(c.serverName), keyID, c.key.Private, raw)
	if err != nil {
		return nil, fmt.Errorf("sign server keys: %w", err)
	}
	return signed, nil
}
