// Package federation is the server-server API, in and out: the server's
// signing keys and key notary, other servers' keys (fetched, checked,
// cached), request signing and verification (X-Matrix), inbound /send
// transactions, joins and leaves in both directions, the event and state
// endpoints other servers read rooms with, and the per-destination
// outbound queues fed from the roomserver's output stream. Every request
// in or out passes the allow-list of server names (config.Federation).
//
// Inbound events enter the roomserver through the same path as local
// ones (roomserver/api.Writer.InputEvents) once their format, signatures
// and content hashes are checked here; the roomserver checks the auth
// rules. Only cmd/ builds the component and puts its routes on the TLS
// federation listener.
package federation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/federation/internal/transport"
	fedstorage "github.com/matrix-gouv/homeserver/federation/storage"
	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/version"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// ServerSoftware is the server name reported by the version endpoint.
const ServerSoftware = "homeserver"

// Log field names of the component.
const (
	fieldServer  = "server"
	fieldOrigin  = "origin"
	fieldRoomID  = "room_id"
	fieldEventID = "event_id"
	fieldTxnID   = "txn_id"
)

// Rooms is what the component asks of the roomserver.
type Rooms interface {
	rsapi.Writer
	rsapi.Reader
	rsapi.Federator
	// ResolveAlias and PublicRooms are the room directory's (rsapi.Directory).
	ResolveAlias(ctx context.Context, alias string) (rsapi.RoomAlias, error)
	PublicRooms(ctx context.Context, q rsapi.PublicRoomsQuery) (rsapi.PublicRoomsPage, error)
}

// Deps is what the federation component needs from cmd/.
type Deps struct {
	// Global holds the server name and the signing key.
	Global *config.Global
	// Config is the federation section.
	Config *config.Federation
	// DB holds the federation tables (remote keys, inbound transactions,
	// destinations).
	DB *storage.DB
	// Rooms is the roomserver. Nil serves only the key and version
	// endpoints (a process without the roomserver).
	Rooms Rooms
	// Bus carries the roomserver's output and the outbound queue. Nil:
	// nothing is sent to other servers.
	Bus *bus.Bus
	// Log is already tagged with component=federation.
	Log *logrus.Entry
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// OpenID resolves the OpenID tokens of /openid/userinfo (the client
	// component); nil answers every token as unknown.
	OpenID hsapi.OpenIDQuerier
	// Keys answers about local users' encryption keys and takes other
	// servers' to-device messages (the client component). Nil: the
	// /user/keys and /user/devices endpoints are not served and
	// to-device EDUs are dropped.
	Keys hsapi.KeyServer
	// EDUs takes other servers' users' typing and read receipts (the
	// client component). Nil: those EDUs are dropped.
	EDUs hsapi.EDUReceiver
	// Profiles answers /query/profile (the client component). Nil: not
	// served.
	Profiles hsapi.ProfileServer
}

// Component is the server-server API.
type Component struct {
	serverName spec.ServerName
	keys       ownKeys
	validity   time.Duration
	cfg        *config.Federation
	store      *fedstorage.Store
	rooms      Rooms
	bus        *bus.Bus
	log        *logrus.Entry
	now        func() time.Time
	openID     hsapi.OpenIDQuerier
	e2ee       hsapi.KeyServer
	edus       hsapi.EDUReceiver
	profiles   hsapi.ProfileServer
	// tripper and client send every outbound request.
	tripper *transport.Tripper
	client  fclient.FederationClient
	// keyRing verifies other servers' signatures.
	keyRing *gomatrixserverlib.KeyRing
	// txns serialises the handling of one inbound transaction id.
	txns keyedMutex
	// sender is the outbound queue (nil without a bus).
	sender *sender
	// originLimit bounds the rate of each other server's signed requests.
	originLimit *httputil.Limiter
	// originGate bounds how many of them run at once.
	originGate *originGate
	// backfillMisses remembers the rooms whose history no server gave
	// lately (backfill.go).
	backfillMisses backfillMisses
}

// New builds the component from the server's signing keys and the
// federation section; it fails when a key or the trusted CA file does
// not parse. It does no network I/O.
func New(deps Deps) (*Component, error) {
	keys, err := loadOwnKeys(deps.Global.SigningKey, deps.Config.OldSigningKeys)
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	c := &Component{
		serverName:  spec.ServerName(deps.Global.ServerName),
		keys:        keys,
		validity:    deps.Config.KeyValidity.Std(),
		cfg:         deps.Config,
		rooms:       deps.Rooms,
		bus:         deps.Bus,
		log:         deps.Log,
		now:         now,
		openID:      deps.OpenID,
		e2ee:        deps.Keys,
		edus:        deps.EDUs,
		profiles:    deps.Profiles,
		originLimit: httputil.NewLimiter(deps.Config.OriginRateLimit.PerSecond, deps.Config.OriginRateLimit.Burst),
		originGate:  newOriginGate(deps.Config.OriginConcurrency.Concurrent, deps.Config.OriginConcurrency.MaxQueued),
	}
	if deps.DB != nil {
		c.store = fedstorage.New(deps.DB)
	}
	c.tripper, err = transport.New(transport.Options{
		Allowed: deps.Config.ServerAllowed, Addresses: deps.Config.ServerAddresses,
		TrustedCAFile: deps.Global.Path(deps.Config.TrustedCAFile), AllowPrivate: deps.Config.AllowPrivateAddresses,
	})
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	c.client = fclient.NewFederationClient([]*fclient.SigningIdentity{{
		ServerName: c.serverName, KeyID: gomatrixserverlib.KeyID(keys.current.ID), PrivateKey: keys.current.Private,
	}}, fclient.WithTransport(c.tripper), fclient.WithTimeout(requestTimeout), fclient.WithUserAgent(ServerSoftware+"/"+version.String()))
	c.keyRing = &gomatrixserverlib.KeyRing{
		KeyDatabase: keyDatabase{c},
		KeyFetchers: []gomatrixserverlib.KeyFetcher{directFetcher{c}, relayFetcher{c}},
	}
	if deps.Bus != nil && deps.Rooms != nil && c.store != nil {
		c.sender = newSender(c)
	}
	return c, nil
}

// requestTimeout bounds one outbound request.
const requestTimeout = 30 * time.Second

// Start starts the outbound queue: the consumer of the roomserver's
// output and a sender per destination already known. Call it once,
// before serving requests.
func (c *Component) Start(ctx context.Context) error {
	if c.sender != nil {
		return c.sender.start(ctx)
	}
	return nil
}

// Stop stops the outbound queue and waits for it.
func (c *Component) Stop(ctx context.Context) error {
	if c.sender != nil {
		c.sender.stop()
	}
	c.tripper.CloseIdleConnections()
	return nil
}

// route is one line of the federation API's route table.
type route struct {
	method, path string
	// signed routes require an X-Matrix signature from an allowed server.
	signed bool
	h      httputil.HandlerFunc
}

// Mount adds the federation API's routes to r, which cmd/ serves on the
// TLS federation listener.
func (c *Component) Mount(r chi.Router) {
	const v1, v2 = "/_matrix/federation/v1", "/_matrix/federation/v2"
	routes := []route{
		{"GET", v1 + "/version", false, c.Version},
		{"GET", "/_matrix/key/v2/server", false, c.ServerKeys},
		{"GET", "/_matrix/key/v2/query/{serverName}", false, c.NotaryQueryServer},
		{"POST", "/_matrix/key/v2/query", false, c.NotaryQuery},
		// Called by services that are not Matrix servers (Element Call's
		// LiveKit JWT service): no X-Matrix signature is asked for, and
		// the server allow-list must not apply to it.
		{"GET", v1 + "/openid/userinfo", false, c.OpenIDUserInfo},
	}
	if c.rooms != nil && c.store != nil {
		routes = append(routes,
			route{"PUT", v1 + "/send/{txnID}", true, c.Send},
			route{"GET", v1 + "/event/{eventID}", true, c.GetEvent},
			route{"GET", v1 + "/state/{roomID}", true, c.GetState},
			route{"GET", v1 + "/state_ids/{roomID}", true, c.GetStateIDs},
			route{"GET", v1 + "/event_auth/{roomID}/{eventID}", true, c.GetEventAuth},
			route{"GET", v1 + "/backfill/{roomID}", true, c.Backfill},
			route{"POST", v1 + "/get_missing_events/{roomID}", true, c.GetMissingEvents},
			route{"GET", v1 + "/make_join/{roomID}/{userID}", true, c.MakeJoin},
			route{"PUT", v2 + "/send_join/{roomID}/{eventID}", true, c.SendJoin},
			route{"GET", v1 + "/make_leave/{roomID}/{userID}", true, c.MakeLeave},
			route{"PUT", v2 + "/send_leave/{roomID}/{eventID}", true, c.SendLeave},
			route{"PUT", v2 + "/invite/{roomID}/{eventID}", true, c.Invite},
			route{"GET", v1 + "/make_knock/{roomID}/{userID}", true, c.MakeKnock},
			route{"PUT", v1 + "/send_knock/{roomID}/{eventID}", true, c.SendKnock},
			route{"GET", v1 + "/hierarchy/{roomID}", true, c.Hierarchy},
			route{"GET", v1 + "/query/directory", true, c.QueryDirectory},
			route{"GET", v1 + "/publicRooms", true, c.PublicRooms},
			route{"POST", v1 + "/publicRooms", true, c.PublicRooms},
			route{"GET", v1 + "/timestamp_to_event/{roomID}", true, c.TimestampToEvent},
		)
	}
	if c.profiles != nil {
		routes = append(routes, route{"GET", v1 + "/query/profile", true, c.QueryProfileHandler})
	}
	if c.e2ee != nil {
		routes = append(routes,
			route{"POST", v1 + "/user/keys/query", true, c.UserKeysQuery},
			route{"POST", v1 + "/user/keys/claim", true, c.UserKeysClaim},
			route{"GET", v1 + "/user/devices/{userID}", true, c.UserDevices},
		)
	}
	for _, rt := range routes {
		hf := rt.h
		if rt.signed && strings.Contains(rt.path, "{roomID}") {
			hf = c.RequireACL(hf)
		}
		if rt.signed {
			hf = c.limitOrigin(hf)
		}
		h := httputil.Handle(hf)
		if rt.signed {
			h = c.RequireSignature(h)
		}
		r.Method(rt.method, rt.path, h)
	}
}

// limitOrigin takes a token of the request's origin (signed routes only:
// the origin is known), then waits for one of its turns (the per-origin
// concurrency limit), before h runs.
func (c *Component) limitOrigin(h httputil.HandlerFunc) httputil.HandlerFunc {
	return func(r *http.Request) (any, error) {
		origin := string(originOf(r))
		if err := c.originLimit.Allow(origin); err != nil {
			return nil, err
		}
		release, err := c.originGate.enter(r.Context(), origin)
		if err != nil {
			return nil, err
		}
		defer release()
		return h(r)
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

// keyedMutex serialises work per key (here: origin and transaction id).
type keyedMutex struct {
	mu    sync.Mutex // guards locks
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l, ok := k.locks[key]
	if !ok {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
