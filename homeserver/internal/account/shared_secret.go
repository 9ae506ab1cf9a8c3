package account

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// nonceLifetime is how long a shared-secret registration nonce is valid.
const nonceLifetime = 5 * time.Minute

// SharedSecretNonce is GET /_synapse/admin/v1/register: a nonce for the
// HMAC of the next registration. The nonce is self-certifying (a random
// part, its issue time and an HMAC of both under a key derived from the
// shared secret), so any client API process can check it without shared
// state. Unlike Synapse's, a nonce may serve more than once within its
// lifetime; replaying a whole request only meets M_USER_IN_USE.
func (h *Handlers) SharedSecretNonce(r *http.Request) (any, error) {
	if h.cfg.Registration.SharedSecret == "" {
		return nil, httputil.Errorf(httputil.CodeForbidden, "shared secret registration is not enabled").WithStatus(http.StatusBadRequest)
	}
	var b [24]byte
	_, _ = rand.Read(b[:16])
	binary.BigEndian.PutUint64(b[16:], uint64(time.Now().Unix()))
	return map[string]string{"nonce": hex.EncodeToString(b[:]) + hex.EncodeToString(h.nonceMAC(b[:]))}, nil
}

func (h *Handlers) nonceMAC(b []byte) []byte {
	m := hmac.New(sha256.New, []byte("nonce\x00"+h.cfg.Registration.SharedSecret))
	m.Write(b)
	return m.Sum(nil)[:16]
}

// checkNonce verifies a nonce this server issued and that it is fresh.
func (h *Handlers) checkNonce(nonce string) bool {
	raw, err := hex.DecodeString(nonce)
	if err != nil || len(raw) != 40 {
		return false
	}
	if !hmac.Equal(raw[24:], h.nonceMAC(raw[:24])) {
		return false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw[16:24])), 0)
	return time.Since(issued) < nonceLifetime
}

type sharedSecretRequest struct {
	Nonce       string  `json:"nonce"`
	Username    string  `json:"username"`
	DisplayName *string `json:"displayname"`
	Password    string  `json:"password"`
	Admin       bool    `json:"admin"`
	UserType    string  `json:"user_type"`
	// InhibitLogin creates the account without a device or token.
	InhibitLogin bool   `json:"inhibit_login"`
	MAC          string `json:"mac"`
}

// SharedSecretRegister is POST /_synapse/admin/v1/register, Synapse's
// admin registration: mac is the hex HMAC-SHA1 under the shared secret of
// nonce, username, password, "admin" or "notadmin" and the optional
// user_type, separated by NUL bytes. Admin tools and test suites use it.
func (h *Handlers) SharedSecretRegister(r *http.Request) (any, error) {
	secret := h.cfg.Registration.SharedSecret
	if secret == "" {
		return nil, httputil.Errorf(httputil.CodeForbidden, "shared secret registration is not enabled").WithStatus(http.StatusBadRequest)
	}
	var req sharedSecretRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.Nonce == "" || req.Username == "" || req.MAC == "" {
		return nil, httputil.MissingParam("nonce, username and mac are required")
	}
	if !h.checkNonce(req.Nonce) {
		return nil, httputil.Errorf(httputil.CodeUnknown, "unrecognised nonce").WithStatus(http.StatusBadRequest)
	}
	admin := "notadmin"
	if req.Admin {
		admin = "admin"
	}
	parts := []string{req.Nonce, req.Username, req.Password, admin}
	if req.UserType != "" {
		parts = append(parts, req.UserType)
	}
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(strings.Join(parts, "\x00")))
	got, err := hex.DecodeString(req.MAC)
	if err != nil || !hmac.Equal(got, m.Sum(nil)) {
		return nil, httputil.Forbidden("HMAC incorrect")
	}
	userID, err := h.validateLocalpart(strings.ToLower(req.Username))
	if err != nil {
		return nil, err
	}
	if req.Password != "" {
		if err := h.checkPasswordPolicy(req.Password); err != nil {
			return nil, err
		}
	}
	p := createParams{userID: userID, password: req.Password, admin: req.Admin, login: !req.InhibitLogin, ip: clientIP(r)}
	if req.DisplayName != nil && len(*req.DisplayName) <= 256 {
		p.profileName = *req.DisplayName
	}
	return h.createAccount(r.Context(), p)
}
