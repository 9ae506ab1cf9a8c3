// Package account serves the account endpoints of the client-server API:
// registration (with tokens, and the Synapse-compatible shared-secret admin
// endpoint), login, refresh, logout, whoami, devices, password change and
// deactivation. It also carries the operations the admin CLI needs.
package account

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/uia"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Deps is what the account handlers need.
type Deps struct {
	Global *config.Global
	Config *config.Client
	Store  *storage.Store
	Auth   *auth.Authenticator
	// DeviceLists is told when a user's devices change (login, logout,
	// deletion, deactivation), so that their peers' syncs hear of it.
	// Nil: nobody is told.
	DeviceLists DeviceListNotifier
	// AppServices are the registered application services: their users
	// register and log in with their as_token, and their exclusive
	// namespaces are refused to everyone else. Nil: none.
	AppServices *config.AppServices
}

// DeviceListNotifier is told of changes of a user's devices.
type DeviceListNotifier interface {
	NotifyDeviceListChange(userID string)
}

// Handlers serves the account endpoints.
type Handlers struct {
	deviceLists DeviceListNotifier
	global      *config.Global
	cfg         *config.Client
	store       *storage.Store
	auth        *auth.Authenticator
	uia         *uia.Server
	failedLogin *httputil.Limiter
	register    *httputil.Limiter
	// passwordSlots bounds the password hashes computed at once: each
	// takes argon2id's memory (19 MiB by default) and a core, so a burst
	// of logins queues here instead of growing the heap.
	passwordSlots chan struct{}
	appServices   *config.AppServices
}

// New returns the account handlers.
func New(d Deps) *Handlers {
	rl := d.Config.RateLimits
	h := &Handlers{
		global:        d.Global,
		cfg:           d.Config,
		store:         d.Store,
		auth:          d.Auth,
		deviceLists:   d.DeviceLists,
		appServices:   d.AppServices,
		failedLogin:   httputil.NewLimiter(rl.FailedLogin.PerSecond, rl.FailedLogin.Burst),
		register:      httputil.NewLimiter(rl.Register.PerSecond, rl.Register.Burst),
		passwordSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
	}
	h.uia = uia.New(d.Store, map[string]uia.Stage{
		uia.StagePassword:          h.passwordStage,
		uia.StageDummy:             func(context.Context, uia.AuthDict, string) (map[string]string, error) { return nil, nil },
		uia.StageRegistrationToken: h.registrationTokenStage,
	})
	return h
}

// UIA returns the account handlers' user-interactive auth server (its
// m.login.password stage counts failures against the failed-login limit),
// for other packages' operations on one's own account.
func (h *Handlers) UIA() *uia.Server { return h.uia }

// localpartPattern is the spec's grammar for new user ids' localparts
// (historical ids may hold more, but we never create them).
var localpartPattern = regexp.MustCompile(`^[a-z0-9._=\-/+]+$`)

// validateLocalpart checks a requested localpart and returns the user id.
func (h *Handlers) validateLocalpart(localpart string) (string, error) {
	if !localpartPattern.MatchString(localpart) {
		return "", httputil.Errorf(httputil.CodeInvalidUsername, "user names may contain only a-z, 0-9, and . _ = - / +")
	}
	userID := "@" + localpart + ":" + h.global.ServerName
	if len(userID) > 255 {
		return "", httputil.Errorf(httputil.CodeInvalidUsername, "user id is longer than 255 characters")
	}
	return userID, nil
}

// resolveUser turns a login identifier (a localpart or a full user id of
// this server) into a user id; the localpart is lower-cased as Synapse does.
func (h *Handlers) resolveUser(user string) (string, bool) {
	if strings.HasPrefix(user, "@") {
		local, server, ok := strings.Cut(user[1:], ":")
		if !ok || server != h.global.ServerName {
			return "", false
		}
		user = local
	}
	if user == "" {
		return "", false
	}
	return "@" + strings.ToLower(user) + ":" + h.global.ServerName, true
}

// checkPasswordPolicy enforces the configured minimum length.
func (h *Handlers) checkPasswordPolicy(pw string) error {
	if len(pw) < h.cfg.Auth.PasswordMinLength {
		return httputil.Errorf(httputil.CodeWeakPassword, "password must be at least %d characters", h.cfg.Auth.PasswordMinLength)
	}
	if len(pw) > 512 {
		return httputil.Errorf(httputil.CodeWeakPassword, "password is longer than 512 characters")
	}
	return nil
}

func (h *Handlers) hashPassword(ctx context.Context, pw string) (string, error) {
	if err := h.takePasswordSlot(ctx); err != nil {
		return "", err
	}
	defer h.releasePasswordSlot()
	return auth.HashPassword(pw, auth.PasswordParams{MemoryKiB: h.cfg.Auth.Argon2Memory, Time: h.cfg.Auth.Argon2Time})
}

// takePasswordSlot waits for a turn to hash a password.
func (h *Handlers) takePasswordSlot(ctx context.Context) error {
	select {
	case h.passwordSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Handlers) releasePasswordSlot() { <-h.passwordSlots }

// passwordStage is UIA's m.login.password, for an authenticated user.
func (h *Handlers) passwordStage(ctx context.Context, a uia.AuthDict, userID string) (map[string]string, error) {
	user := a.User
	if a.Identifier != nil {
		if a.Identifier.Type != "m.id.user" {
			return nil, httputil.Errorf(httputil.CodeUnknown, "unsupported identifier type").WithStatus(http.StatusBadRequest)
		}
		user = a.Identifier.User
	}
	if id, ok := h.resolveUser(user); !ok || id != userID {
		return nil, httputil.Forbidden("identifier does not match the authenticated user")
	}
	if err := h.failedLogin.Blocked(userID); err != nil {
		return nil, err
	}
	if err := h.checkAccountPassword(ctx, userID, a.Password); err != nil {
		return nil, err
	}
	return nil, nil
}

// checkAccountPassword checks pw for userID, counting failures against the
// failed-login limit. It answers M_FORBIDDEN for an unknown user as for a
// wrong password, so that the answer does not reveal which accounts exist.
func (h *Handlers) checkAccountPassword(ctx context.Context, userID, pw string) error {
	acc, err := h.store.Account(ctx, userID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err == nil && acc.Deactivated {
		return httputil.Errorf(httputil.CodeUserDeactivated, "this account has been deactivated")
	}
	if err == nil {
		if err := h.takePasswordSlot(ctx); err != nil {
			return err
		}
		err = auth.CheckPassword(acc.PasswordHash, pw)
		h.releasePasswordSlot()
	}
	if err != nil {
		_ = h.failedLogin.Allow(userID)
		return httputil.Forbidden("invalid username or password")
	}
	return nil
}

// preparedSession is a session's tokens, minted but not yet stored.
type preparedSession struct {
	ns   storage.NewSession
	resp sessionResponse
}

// prepareSession mints tokens for a device of userID (a new random device
// when deviceID is empty). With refresh, the access token expires and a
// refresh token comes with it.
func (h *Handlers) prepareSession(userID, deviceID string, displayName *string, ip string, refresh bool) (preparedSession, error) {
	if deviceID == "" {
		deviceID = auth.NewDeviceID()
	} else if len(deviceID) > 255 {
		return preparedSession{}, httputil.InvalidParam("device_id is longer than 255 characters")
	}
	access, accessHash := auth.NewToken(auth.AccessTokenPrefix)
	p := preparedSession{
		ns:   storage.NewSession{UserID: userID, DeviceID: deviceID, DisplayName: displayName, IP: ip, AccessHash: accessHash},
		resp: sessionResponse{UserID: userID, DeviceID: deviceID, AccessToken: access, HomeServer: h.global.ServerName},
	}
	if refresh {
		h.addRefresh(&p.ns, &p.resp)
	}
	return p, nil
}

// openSession mints tokens and stores the session.
func (h *Handlers) openSession(ctx context.Context, userID, deviceID string, displayName *string, ip string, refresh bool) (sessionResponse, error) {
	p, err := h.prepareSession(userID, deviceID, displayName, ip, refresh)
	if err != nil {
		return sessionResponse{}, err
	}
	if err := h.store.OpenSession(ctx, p.ns); err != nil {
		return sessionResponse{}, fmt.Errorf("open session: %w", err)
	}
	h.devicesChanged(userID)
	return p.resp, nil
}

// addRefresh makes the session's access token expire and adds a refresh
// token to it.
func (h *Handlers) addRefresh(ns *storage.NewSession, resp *sessionResponse) {
	now := h.store.Now().UnixMilli()
	life := h.cfg.Auth.AccessTokenLifetime.Std().Milliseconds()
	ns.AccessExpiresTS = now + life
	refresh, refreshHash := auth.NewToken(auth.RefreshTokenPrefix)
	ns.RefreshHash = refreshHash
	if l := h.cfg.Auth.RefreshTokenLifetime.Std().Milliseconds(); l > 0 {
		ns.RefreshExpiresTS = now + l
	}
	resp.RefreshToken = refresh
	resp.ExpiresInMS = life
}

// sessionResponse is the body of a successful login or registration.
type sessionResponse struct {
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token,omitempty"`
	DeviceID     string `json:"device_id,omitempty"`
	HomeServer   string `json:"home_server"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresInMS  int64  `json:"expires_in_ms,omitempty"`
}

// clientIP is the peer address. X-Forwarded-For is not trusted: a reverse
// proxy in front must be configured for that explicitly (not yet offered).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *Handlers) decode(r *http.Request, v any) error {
	return httputil.DecodeJSON(r, h.cfg.MaxRequestBytes, v)
}

// devicesChanged tells whoever listens that userID's devices changed.
func (h *Handlers) devicesChanged(userID string) {
	if h.deviceLists != nil {
		h.deviceLists.NotifyDeviceListChange(userID)
	}
}
