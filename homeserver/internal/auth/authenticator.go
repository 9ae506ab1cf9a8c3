package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Authenticator resolves access tokens against the store, and application
// services' as_tokens against their registrations.
type Authenticator struct {
	store *storage.Store
	// perUser limits requests per user; nil for no limit.
	perUser *httputil.Limiter
	now     func() time.Time
	// appServices maps as_tokens to their registrations; read only after
	// construction. Empty when no bridge is registered.
	appServices map[string]*config.AppService

	// sessions caches valid tokens' sessions by token hash: a client's
	// requests (a /sync loop) would otherwise each make a query.
	mu       sync.Mutex
	sessions map[string]cachedSession
}

// sessionCacheTTL is how long a token found valid is trusted without
// asking the database again. Revocations by this process (logout, device
// deletion, refresh, deactivation) end the trust at once; those of
// another process (the admin command) within this time.
const sessionCacheTTL = 10 * time.Second

// maxCachedSessions bounds the cache; past it, it starts over.
const maxCachedSessions = 100_000

type cachedSession struct {
	ss  storage.Session
	at  time.Time
	gen uint64
}

// NewAuthenticator returns an authenticator over store, limiting each user
// to perUser (nil: no limit), that also admits the as_tokens of apps (nil:
// none).
func NewAuthenticator(store *storage.Store, perUser *httputil.Limiter, apps *config.AppServices) *Authenticator {
	a := &Authenticator{store: store, perUser: perUser, now: time.Now, appServices: map[string]*config.AppService{},
		sessions: map[string]cachedSession{}}
	if apps != nil {
		for _, as := range apps.Registrations {
			a.appServices[as.ASToken] = as
		}
	}
	return a
}

// AppService returns the registration whose as_token token is, or nil.
func (a *Authenticator) AppService(token string) *config.AppService {
	if len(a.appServices) == 0 {
		return nil
	}
	return a.appServices[token]
}

// QueryAccessToken implements api.TokenQuerier.
func (a *Authenticator) QueryAccessToken(ctx context.Context, token string) (api.Device, error) {
	ss, err := a.session(ctx, HashToken(token))
	if errors.Is(err, storage.ErrNotFound) {
		return api.Device{}, api.ErrUnknownToken
	}
	if err != nil {
		return api.Device{}, err
	}
	if ss.ExpiresTS != 0 && ss.ExpiresTS <= a.now().UnixMilli() {
		return api.Device{}, api.ErrSoftLogout
	}
	return api.Device{UserID: ss.UserID, DeviceID: ss.DeviceID, IsAdmin: ss.IsAdmin, AppServiceID: ss.AppServiceID}, nil
}

// session returns the session of a token hash, from the cache while the
// store revoked nothing since and the entry is fresh; a first use is
// recorded before the session is cached.
func (a *Authenticator) session(ctx context.Context, hash string) (storage.Session, error) {
	// The generation is read before the query: a revocation committed
	// after it makes the entry stale, whatever the query saw.
	gen := a.store.SessionsGeneration()
	now := a.now()
	a.mu.Lock()
	c, ok := a.sessions[hash]
	a.mu.Unlock()
	if ok && c.gen == gen && now.Sub(c.at) < sessionCacheTTL {
		return c.ss, nil
	}
	ss, err := a.store.SessionByAccessToken(ctx, hash)
	if err != nil {
		return storage.Session{}, err
	}
	if !ss.Used {
		if err := a.store.MarkUsed(ctx, ss); err != nil {
			return storage.Session{}, fmt.Errorf("first use of access token: %w", err)
		}
		ss.Used = true
		// MarkUsed may revoke the refresh token this one replaced (not
		// this token): the generation read above still holds for it.
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sessions) >= maxCachedSessions {
		clear(a.sessions)
	}
	a.sessions[hash] = cachedSession{ss: ss, at: now, gen: gen}
	return ss, nil
}

// TokenError turns a TokenQuerier error into the client's Matrix error:
// 401 M_UNKNOWN_TOKEN with soft_logout telling whether the device survives.
func TokenError(err error) error {
	switch {
	case errors.Is(err, api.ErrSoftLogout):
		return httputil.UnknownToken(true)
	case errors.Is(err, api.ErrUnknownToken):
		return httputil.UnknownToken(false)
	}
	return err
}

type deviceKey struct{}

// DeviceFrom returns the device that authenticated the request; only
// valid behind Require.
func DeviceFrom(ctx context.Context) api.Device {
	d, _ := ctx.Value(deviceKey{}).(api.Device)
	return d
}

// WithDevice returns ctx carrying the authenticated device.
func WithDevice(ctx context.Context, d api.Device) context.Context {
	return context.WithValue(ctx, deviceKey{}, d)
}

// Require is middleware that admits only requests with a valid access
// token, within the user's request rate, and tags the request's logger.
func (a *Authenticator) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := httputil.AccessToken(r)
		if err != nil {
			httputil.WriteError(w, r, err)
			return
		}
		limited := true
		var dev api.Device
		// One map lookup, and none at all without bridges: the normal
		// path does not slow down.
		if as := a.AppService(token); as != nil {
			dev, err = a.appServiceDevice(r, as)
			if err != nil {
				httputil.WriteError(w, r, err)
				return
			}
			limited = as.IsRateLimited()
		} else if dev, err = a.QueryAccessToken(r.Context(), token); err != nil {
			httputil.WriteError(w, r, TokenError(err))
			return
		}
		if limited {
			if err := a.perUser.Allow(dev.UserID); err != nil {
				httputil.WriteError(w, r, err)
				return
			}
		}
		ctx := WithDevice(r.Context(), dev)
		ctx = httputil.WithLog(ctx, httputil.Log(ctx).WithField(httputil.FieldUserID, dev.UserID).WithField(httputil.FieldDeviceID, dev.DeviceID))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

var _ api.TokenQuerier = (*Authenticator)(nil)
