package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
}

// NewAuthenticator returns an authenticator over store, limiting each user
// to perUser (nil: no limit), that also admits the as_tokens of apps (nil:
// none).
func NewAuthenticator(store *storage.Store, perUser *httputil.Limiter, apps *config.AppServices) *Authenticator {
	a := &Authenticator{store: store, perUser: perUser, now: time.Now, appServices: map[string]*config.AppService{}}
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
	ss, err := a.store.SessionByAccessToken(ctx, HashToken(token))
	if errors.Is(err, storage.ErrNotFound) {
		return api.Device{}, api.ErrUnknownToken
	}
	if err != nil {
		return api.Device{}, err
	}
	if ss.ExpiresTS != 0 && ss.ExpiresTS <= a.now().UnixMilli() {
		return api.Device{}, api.ErrSoftLogout
	}
	if !ss.Used {
		if err := a.store.MarkUsed(ctx, ss); err != nil {
			return api.Device{}, fmt.Errorf("first use of access token: %w", err)
		}
	}
	return api.Device{UserID: ss.UserID, DeviceID: ss.DeviceID, IsAdmin: ss.IsAdmin, AppServiceID: ss.AppServiceID}, nil
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
