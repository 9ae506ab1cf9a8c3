// Package calls serves what voice and video calls need from the client
// API besides rooms: TURN credentials for Element's 1:1 calls
// (GET /voip/turnServer), OpenID tokens that Element Call hands to its
// LiveKit JWT service (POST /user/{userId}/openid/request_token; the
// service checks them at the federation API's /openid/userinfo), and the
// MatrixRTC transports (GET …/org.matrix.msc4143/rtc/transports). Delayed
// events (MSC4140) are in delayed.go.
package calls

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// OpenIDStore keeps OpenID tokens (as hashes).
type OpenIDStore interface {
	CreateOpenIDToken(ctx context.Context, hash, userID string, expiresTS int64) error
	OpenIDTokenUser(ctx context.Context, hash string, nowTS int64) (string, error)
}

// Handlers serves the call endpoints.
type Handlers struct {
	serverName string
	cfg        *config.Calls
	store      OpenIDStore
	now        func() time.Time
}

// New returns the handlers.
func New(serverName string, cfg *config.Calls, store OpenIDStore) *Handlers {
	return &Handlers{serverName: serverName, cfg: cfg, store: store, now: time.Now}
}

// TURNCredentials returns coturn's use-auth-secret credentials for userID,
// valid until expiry: the username is "<expiry unix seconds>:<user id>",
// the password base64(HMAC-SHA1(secret, username)), which coturn
// recomputes from its static-auth-secret.
func TURNCredentials(secret, userID string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + userID
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TURNServer is GET /voip/turnServer: {} when no TURN server is
// configured, as Synapse answers.
func (h *Handlers) TURNServer(r *http.Request) (any, error) {
	if len(h.cfg.TURNURIs) == 0 || h.cfg.TURNSharedSecret == "" {
		return struct{}{}, nil
	}
	ttl := h.cfg.TURNUserLifetime.Std()
	user, pass := TURNCredentials(h.cfg.TURNSharedSecret, auth.DeviceFrom(r.Context()).UserID, h.now().Add(ttl))
	return map[string]any{"username": user, "password": pass, "uris": h.cfg.TURNURIs, "ttl": int64(ttl / time.Second)}, nil
}

// RTCTransports is GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports.
func (h *Handlers) RTCTransports(r *http.Request) (any, error) {
	return map[string]any{"rtc_transports": Transports(h.cfg)}, nil
}

// Transports is the configured MatrixRTC transports in their wire shape,
// for rtc/transports and .well-known's org.matrix.msc4143.rtc_foci.
func Transports(cfg *config.Calls) []map[string]string {
	out := []map[string]string{}
	for _, t := range cfg.RTCTransports {
		out = append(out, map[string]string{"type": t.Type, "livekit_service_url": t.LiveKitServiceURL})
	}
	return out
}

// RequestOpenIDToken is POST /user/{userId}/openid/request_token.
func (h *Handlers) RequestOpenIDToken(r *http.Request) (any, error) {
	userID := auth.DeviceFrom(r.Context()).UserID
	if httputil.PathParam(r, "userID") != userID {
		return nil, httputil.Forbidden("cannot request an OpenID token for another user")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("make OpenID token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	ttl := h.cfg.OpenIDTokenLifetime.Std()
	if err := h.store.CreateOpenIDToken(r.Context(), hashToken(token), userID, h.now().Add(ttl).UnixMilli()); err != nil {
		return nil, err
	}
	return map[string]any{"access_token": token, "token_type": "Bearer", "matrix_server_name": h.serverName,
		"expires_in": int64(ttl / time.Second)}, nil
}

// QueryOpenIDToken implements api.OpenIDQuerier: the user an unexpired
// OpenID token was issued to, or api.ErrUnknownToken.
func (h *Handlers) QueryOpenIDToken(ctx context.Context, token string) (string, error) {
	userID, err := h.store.OpenIDTokenUser(ctx, hashToken(token), h.now().UnixMilli())
	if errors.Is(err, api.ErrUnknownToken) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("read OpenID token: %w", err)
	}
	return userID, nil
}

// hashToken is how OpenID tokens are stored: a leaked table grants
// nothing.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

var _ api.OpenIDQuerier = (*Handlers)(nil)
