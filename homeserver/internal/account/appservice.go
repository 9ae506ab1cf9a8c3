package account

import (
	"context"
	"errors"
	"net/http"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// LoginTypeAppService is the login and registration type of application
// services: the as_token authenticates, no password, no UIA.
const LoginTypeAppService = "m.login.application_service"

// requestAppService returns the application service whose as_token the
// request carries, or a Matrix error when it carries none or another
// token.
func (h *Handlers) requestAppService(r *http.Request) (*config.AppService, error) {
	token, err := httputil.AccessToken(r)
	if err != nil {
		return nil, err
	}
	as := h.auth.AppService(token)
	if as == nil {
		return nil, httputil.UnknownToken(false)
	}
	return as, nil
}

// registerAppServiceUser is POST /register with type
// m.login.application_service: a user in the application service's
// namespace, created whether or not registration is open.
func (h *Handlers) registerAppServiceUser(r *http.Request, req registerRequest) (any, error) {
	as, err := h.requestAppService(r)
	if err != nil {
		return nil, err
	}
	if req.Username == "" {
		return nil, httputil.MissingParam("username is required")
	}
	userID, err := h.validateLocalpart(req.Username)
	if err != nil {
		return nil, err
	}
	if err := checkOwned(as, h.appServices, userID); err != nil {
		return nil, err
	}
	return h.createAccount(r.Context(), createParams{
		userID: userID, appServiceID: as.ID, login: !req.InhibitLogin, deviceID: req.DeviceID,
		displayName: req.InitialDeviceDisplayName, ip: clientIP(r), refresh: req.RefreshToken,
	})
}

// loginAppServiceUser is POST /login with type
// m.login.application_service.
func (h *Handlers) loginAppServiceUser(r *http.Request, req loginRequest, user string) (any, error) {
	as, err := h.requestAppService(r)
	if err != nil {
		return nil, err
	}
	userID, ok := h.resolveUser(user)
	if !ok {
		return nil, httputil.Forbidden("invalid user")
	}
	if err := checkOwned(as, h.appServices, userID); err != nil {
		return nil, err
	}
	acct, err := h.store.Account(r.Context(), userID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, httputil.Forbidden("application service has not registered this user")
	case err != nil:
		return nil, err
	case acct.Deactivated:
		return nil, httputil.Errorf(httputil.CodeUserDeactivated, "user is deactivated")
	}
	return h.openSession(r.Context(), userID, req.DeviceID, req.InitialDeviceDisplayName, clientIP(r), req.RefreshToken)
}

// checkOwned refuses (M_EXCLUSIVE) a user id outside the application
// service's namespaces, or inside another one's exclusive namespace (the
// two may overlap when the first's is not exclusive).
func checkOwned(as *config.AppService, all *config.AppServices, userID string) error {
	if !as.OwnsUser(userID) {
		return httputil.Errorf(httputil.CodeExclusive, "user id is not in the application service's namespace")
	}
	for _, other := range all.Registrations {
		if other.ID != as.ID && other.ExclusiveUser(userID) {
			return httputil.Errorf(httputil.CodeExclusive, "user id is reserved by another application service")
		}
	}
	return nil
}

// checkNotExclusive refuses a user id an application service reserved
// (M_EXCLUSIVE), for registrations that are not that service's.
func (h *Handlers) checkNotExclusive(userID string) error {
	if h.appServices != nil && h.appServices.ExclusiveOwner(userID) != nil {
		return httputil.Errorf(httputil.CodeExclusive, "user id is reserved by an application service")
	}
	return nil
}

// EnsureAppServiceUsers creates the sender user of every registration that
// has none yet, so that bridges can act as their bot at once.
func (h *Handlers) EnsureAppServiceUsers(ctx context.Context) error {
	if h.appServices == nil {
		return nil
	}
	for _, as := range h.appServices.Registrations {
		id := as.SenderID()
		err := h.store.CreateAccount(ctx, storage.NewAccount{UserID: id, Localpart: localpartOf(id), AppServiceID: as.ID})
		if err != nil && !errors.Is(err, storage.ErrUserExists) {
			return err
		}
	}
	return nil
}

// msc4190AppService returns the registration of the application service
// making the request when it enabled MSC4190 (device management without
// UIA), else nil.
func (h *Handlers) msc4190AppService(r *http.Request) *config.AppService {
	id := auth.DeviceFrom(r.Context()).AppServiceID
	if id == "" || h.appServices == nil {
		return nil
	}
	if as := h.appServices.ByID(id); as != nil && as.MSC4190 {
		return as
	}
	return nil
}
