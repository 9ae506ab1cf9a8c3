package account

import (
	"errors"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/uia"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// LoginFlows is GET /login.
func (h *Handlers) LoginFlows(r *http.Request) (any, error) {
	flows := []map[string]string{{"type": uia.StagePassword}}
	if h.appServices != nil && len(h.appServices.Registrations) > 0 {
		flows = append(flows, map[string]string{"type": LoginTypeAppService})
	}
	return map[string]any{"flows": flows}, nil
}

type loginRequest struct {
	Type                     string          `json:"type"`
	Identifier               *uia.Identifier `json:"identifier"`
	User                     string          `json:"user"`
	Password                 string          `json:"password"`
	DeviceID                 string          `json:"device_id"`
	InitialDeviceDisplayName *string         `json:"initial_device_display_name"`
	RefreshToken             bool            `json:"refresh_token"`
}

// Login is POST /login (m.login.password with a user identifier).
func (h *Handlers) Login(r *http.Request) (any, error) {
	var req loginRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.Type != uia.StagePassword && req.Type != LoginTypeAppService {
		return nil, httputil.Errorf(httputil.CodeUnknown, "unsupported login type %q", req.Type).WithStatus(http.StatusBadRequest)
	}
	user := req.User
	if req.Identifier != nil {
		if req.Identifier.Type != "m.id.user" {
			return nil, httputil.Errorf(httputil.CodeUnknown, "unsupported identifier type %q", req.Identifier.Type).WithStatus(http.StatusBadRequest)
		}
		user = req.Identifier.User
	}
	if user == "" {
		return nil, httputil.MissingParam("identifier.user is required")
	}
	if req.Type == LoginTypeAppService {
		return h.loginAppServiceUser(r, req, user)
	}
	ip := clientIP(r)
	if err := h.failedLogin.Blocked(ip); err != nil {
		return nil, err
	}
	userID, ok := h.resolveUser(user)
	if !ok {
		_ = h.failedLogin.Allow(ip)
		return nil, httputil.Forbidden("invalid username or password")
	}
	if err := h.failedLogin.Blocked(userID); err != nil {
		return nil, err
	}
	if err := h.checkAccountPassword(r.Context(), userID, req.Password); err != nil {
		var merr *httputil.Error
		if errors.As(err, &merr) && merr.Code == httputil.CodeForbidden {
			_ = h.failedLogin.Allow(ip)
		}
		return nil, err
	}
	return h.openSession(r.Context(), userID, req.DeviceID, req.InitialDeviceDisplayName, ip, req.RefreshToken)
}

// Refresh is POST /refresh: a new access token (and refresh token) for a
// refresh token. The old access token stops working at once.
func (h *Handlers) Refresh(r *http.Request) (any, error) {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.RefreshToken == "" {
		return nil, httputil.MissingParam("refresh_token is required")
	}
	var p preparedSession
	h.addRefresh(&p.ns, &p.resp)
	access, accessHash := auth.NewToken(auth.AccessTokenPrefix)
	p.ns.AccessHash = accessHash
	if _, err := h.store.Refresh(r.Context(), auth.HashToken(req.RefreshToken), p.ns); errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.Errorf(httputil.CodeUnknownToken, "unknown refresh token").With("soft_logout", false)
	} else if err != nil {
		return nil, err
	}
	return map[string]any{"access_token": access, "refresh_token": p.resp.RefreshToken, "expires_in_ms": p.resp.ExpiresInMS}, nil
}

// Whoami is GET /account/whoami.
func (h *Handlers) Whoami(r *http.Request) (any, error) {
	d := auth.DeviceFrom(r.Context())
	return map[string]any{"user_id": d.UserID, "device_id": d.DeviceID, "is_guest": false}, nil
}

// Logout is POST /logout: the token's device goes, with its keys.
func (h *Handlers) Logout(r *http.Request) (any, error) {
	d := auth.DeviceFrom(r.Context())
	if err := h.store.DeleteDevices(r.Context(), d.UserID, []string{d.DeviceID}); err != nil {
		return nil, err
	}
	h.devicesChanged(d.UserID)
	return struct{}{}, nil
}

// LogoutAll is POST /logout/all: every device of the user goes.
func (h *Handlers) LogoutAll(r *http.Request) (any, error) {
	d := auth.DeviceFrom(r.Context())
	devs, err := h.store.Devices(r.Context(), d.UserID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(devs))
	for i, dv := range devs {
		ids[i] = dv.DeviceID
	}
	if err := h.store.DeleteDevices(r.Context(), d.UserID, ids); err != nil {
		return nil, err
	}
	h.devicesChanged(d.UserID)
	return struct{}{}, nil
}
