package account

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/uia"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

type registerRequest struct {
	Type                     string          `json:"type"`
	Username                 string          `json:"username"`
	Password                 string          `json:"password"`
	DeviceID                 string          `json:"device_id"`
	InitialDeviceDisplayName *string         `json:"initial_device_display_name"`
	InhibitLogin             bool            `json:"inhibit_login"`
	RefreshToken             bool            `json:"refresh_token"`
	Auth                     json.RawMessage `json:"auth"`
}

// registrationFlows are the UIA flows of /register: a registration token,
// or nothing at all (m.login.dummy) when the admin opened registration.
func (h *Handlers) registrationFlows() [][]string {
	if h.cfg.Registration.AllowDummy {
		return [][]string{{uia.StageDummy}, {uia.StageRegistrationToken}}
	}
	return [][]string{{uia.StageRegistrationToken}}
}

// Register is POST /register.
func (h *Handlers) Register(r *http.Request) (any, error) {
	var req registerRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.Type == LoginTypeAppService {
		return h.registerAppServiceUser(r, req)
	}
	if err := h.register.Allow(clientIP(r)); err != nil {
		return nil, err
	}
	if kind := r.URL.Query().Get("kind"); kind == "guest" {
		return nil, httputil.Errorf(httputil.CodeGuestForbidden, "guest access is disabled")
	} else if kind != "" && kind != "user" {
		return nil, httputil.InvalidParam("kind must be user or guest")
	}
	if !h.cfg.Registration.Enabled {
		return nil, httputil.Forbidden("registration is disabled")
	}
	var userID string
	if req.Username != "" {
		var err error
		if userID, err = h.available(r.Context(), req.Username); err != nil {
			return nil, err
		}
	}
	if req.Password != "" {
		if err := h.checkPasswordPolicy(req.Password); err != nil {
			return nil, err
		}
	}
	sess, err := h.uia.Verify(r.Context(), uia.Request{Auth: req.Auth, Flows: h.registrationFlows(), Operation: uia.Operation(r)})
	if err != nil {
		return nil, err
	}
	if req.Password == "" {
		return nil, httputil.MissingParam("password is required")
	}
	if userID == "" {
		if userID, err = h.randomUserID(r.Context()); err != nil {
			return nil, err
		}
	}
	return h.createAccount(r.Context(), createParams{
		userID: userID, password: req.Password, token: sess.Results[uia.ResultRegistrationToken],
		login: !req.InhibitLogin, deviceID: req.DeviceID, displayName: req.InitialDeviceDisplayName,
		ip: clientIP(r), refresh: req.RefreshToken,
	})
}

type createParams struct {
	userID, password, token string
	appServiceID            string
	admin                   bool
	login                   bool
	deviceID                string
	displayName             *string
	ip                      string
	refresh                 bool
	// profileName is the account's first display name (the shared-secret
	// endpoint's displayname); empty: the localpart.
	profileName string
}

// createAccount creates the account and, with login, its first device, in
// one transaction.
func (h *Handlers) createAccount(ctx context.Context, p createParams) (sessionResponse, error) {
	hash := ""
	if p.password != "" {
		var err error
		if hash, err = h.hashPassword(ctx, p.password); err != nil {
			return sessionResponse{}, err
		}
	}
	resp := sessionResponse{UserID: p.userID, HomeServer: h.global.ServerName}
	na := storage.NewAccount{UserID: p.userID, Localpart: localpartOf(p.userID), PasswordHash: hash, IsAdmin: p.admin, RegistrationToken: p.token,
		DisplayName: p.profileName, AppServiceID: p.appServiceID}
	if p.login {
		s, err := h.prepareSession(p.userID, p.deviceID, p.displayName, p.ip, p.refresh)
		if err != nil {
			return sessionResponse{}, err
		}
		na.Session, resp = &s.ns, s.resp
	}
	switch err := h.store.CreateAccount(ctx, na); {
	case errors.Is(err, storage.ErrUserExists):
		return sessionResponse{}, httputil.Errorf(httputil.CodeUserInUse, "user id already taken")
	case errors.Is(err, storage.ErrTokenUnusable):
		return sessionResponse{}, httputil.Errorf(httputil.CodeUnauthorized, "registration token is no longer valid").WithStatus(http.StatusUnauthorized)
	case err != nil:
		return sessionResponse{}, err
	}
	return resp, nil
}

// available validates a wanted localpart and checks it is free.
func (h *Handlers) available(ctx context.Context, localpart string) (string, error) {
	userID, err := h.validateLocalpart(localpart)
	if err != nil {
		return "", err
	}
	if err := h.checkNotExclusive(userID); err != nil {
		return "", err
	}
	taken, err := h.store.LocalpartTaken(ctx, localpart)
	if err != nil {
		return "", err
	}
	if taken {
		return "", httputil.Errorf(httputil.CodeUserInUse, "user id already taken")
	}
	return userID, nil
}

// randomUserID picks a free random localpart for a registration without
// a username.
func (h *Handlers) randomUserID(ctx context.Context) (string, error) {
	for i := 0; i < 10; i++ {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		if id, err := h.available(ctx, "u"+hex.EncodeToString(b)); err == nil {
			return id, nil
		}
	}
	return "", errors.New("no free random user id after 10 tries")
}

// Available is GET /register/available.
func (h *Handlers) Available(r *http.Request) (any, error) {
	if err := h.register.Allow(clientIP(r)); err != nil {
		return nil, err
	}
	if !h.cfg.Registration.Enabled {
		return nil, httputil.Forbidden("registration is disabled")
	}
	username := r.URL.Query().Get("username")
	if username == "" {
		return nil, httputil.MissingParam("username is required")
	}
	if _, err := h.available(r.Context(), username); err != nil {
		return nil, err
	}
	return map[string]bool{"available": true}, nil
}

// TokenValidity is GET /v1/register/m.login.registration_token/validity.
func (h *Handlers) TokenValidity(r *http.Request) (any, error) {
	if err := h.register.Allow(clientIP(r)); err != nil {
		return nil, err
	}
	if !h.cfg.Registration.Enabled {
		return nil, httputil.Forbidden("registration is disabled")
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return nil, httputil.MissingParam("token is required")
	}
	ok, err := h.store.RegistrationTokenUsable(r.Context(), token)
	if err != nil {
		return nil, err
	}
	return map[string]bool{"valid": ok}, nil
}

// registrationTokenStage is UIA's m.login.registration_token.
func (h *Handlers) registrationTokenStage(ctx context.Context, a uia.AuthDict, _ string) (map[string]string, error) {
	if a.Token == "" {
		return nil, httputil.MissingParam("token is required")
	}
	ok, err := h.store.RegistrationTokenUsable(ctx, a.Token)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, httputil.Errorf(httputil.CodeUnauthorized, "invalid registration token")
	}
	return map[string]string{uia.ResultRegistrationToken: a.Token}, nil
}

func localpartOf(userID string) string {
	for i := 1; i < len(userID); i++ {
		if userID[i] == ':' {
			return userID[1:i]
		}
	}
	return userID
}
