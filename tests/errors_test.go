package tests

import (
	"strings"
	"testing"

	"github.com/matrix-gouv/homeserver/config"
)

// TestBadInputs checks that each kind of bad request gets its Matrix
// error: the right status and errcode, never a 500.
func TestBadInputs(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		tok := alice.AccessToken
		big := `{"display_name":"` + strings.Repeat("x", 2<<20) + `"}`
		for _, tc := range []struct {
			name, method, path, token string
			body                      any
			status                    int
			errcode                   string
		}{
			{"malformed JSON", "POST", "/_matrix/client/v3/login", "", `{"type":`, 400, "M_NOT_JSON"},
			{"not an object", "POST", "/_matrix/client/v3/login", "", `["m.login.password"]`, 400, "M_BAD_JSON"},
			{"wrong field type", "POST", "/_matrix/client/v3/login", "", `{"type":"m.login.password","password":12}`, 400, "M_BAD_JSON"},
			{"unknown endpoint", "GET", "/_matrix/client/v3/no/such/thing", "", nil, 404, "M_UNRECOGNIZED"},
			{"unknown prefix", "GET", "/nothing/here", "", nil, 404, "M_UNRECOGNIZED"},
			{"wrong method", "DELETE", "/_matrix/client/v3/login", "", nil, 405, "M_UNRECOGNIZED"},
			{"body too large", "PUT", "/_matrix/client/v3/devices/" + string(alice.DeviceID), tok, big, 413, "M_TOO_LARGE"},
			{"missing token", "GET", "/_matrix/client/v3/account/whoami", "", nil, 401, "M_MISSING_TOKEN"},
			{"unknown token", "GET", "/_matrix/client/v3/account/whoami", "mat_nope", nil, 401, "M_UNKNOWN_TOKEN"},
			{"wrong password", "POST", "/_matrix/client/v3/login", "", loginBody("alice", "not the password"), 403, "M_FORBIDDEN"},
			{"unknown user", "POST", "/_matrix/client/v3/login", "", loginBody("nobody", "whatever"), 403, "M_FORBIDDEN"},
			{"other server's user", "POST", "/_matrix/client/v3/login", "", loginBody("@alice:elsewhere", testPassword), 403, "M_FORBIDDEN"},
			{"unknown login type", "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.magic"}, 400, "M_UNKNOWN"},
			{"registration closed", "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "eve", "password": testPassword}, 403, "M_FORBIDDEN"},
			{"guest registration", "POST", "/_matrix/client/v3/register?kind=guest", "", map[string]any{}, 403, "M_GUEST_ACCESS_FORBIDDEN"},
			{"unknown device", "GET", "/_matrix/client/v3/devices/NOSUCH", tok, nil, 404, "M_NOT_FOUND"},
			{"delete_devices without list", "POST", "/_matrix/client/v3/delete_devices", tok, map[string]any{}, 400, "M_MISSING_PARAM"},
			{"UIA unknown session", "POST", "/_matrix/client/v3/delete_devices", tok,
				map[string]any{"devices": []string{}, "auth": map[string]any{"type": "m.login.password", "session": "nope"}}, 400, "M_UNKNOWN"},
			{"UIA for another user", "POST", "/_matrix/client/v3/delete_devices", tok,
				map[string]any{"devices": []string{}, "auth": passwordAuth("@bob:"+serverName, testPassword, "")}, 401, "M_FORBIDDEN"},
			{"weak new password", "POST", "/_matrix/client/v3/account/password", tok, map[string]any{"new_password": "short"}, 400, "M_WEAK_PASSWORD"},
			{"refresh without token", "POST", "/_matrix/client/v3/refresh", "", map[string]any{}, 400, "M_MISSING_PARAM"},
			{"token validity when registration is closed", "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=x", "", nil, 403, "M_FORBIDDEN"},
			{"shared secret bad nonce", "POST", "/_synapse/admin/v1/register", "",
				map[string]any{"nonce": "00", "username": "mallory", "password": testPassword, "mac": "00"}, 400, "M_UNKNOWN"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s.Do(tc.method, tc.path, tc.token, tc.body).Expect(t, tc.status, tc.errcode)
			})
		}

		t.Run("shared secret wrong HMAC", func(t *testing.T) {
			nonce := s.Do("GET", "/_synapse/admin/v1/register", "", nil).Expect(t, 200, "").Body["nonce"].(string)
			s.Do("POST", "/_synapse/admin/v1/register", "",
				map[string]any{"nonce": nonce, "username": "mallory", "password": testPassword, "mac": strings.Repeat("ab", 20)}).
				Expect(t, 403, "M_FORBIDDEN")
		})

		t.Run("CORS preflight", func(t *testing.T) {
			r := s.Do("OPTIONS", "/_matrix/client/v3/login", "", nil)
			if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "*" ||
				!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
				t.Fatalf("preflight: %d %v", r.Status, r.Header)
			}
			if got := s.Do("GET", "/_matrix/client/versions", "", nil).Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Fatalf("CORS header on GET: %q", got)
			}
		})
	})
}

// TestFailedLoginsAreRateLimited: after the burst of failures, even the
// right password is refused with 429 and a Retry-After until the bucket
// refills.
func TestFailedLoginsAreRateLimited(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		s.Register("alice")
		for i := 0; i < 3; i++ {
			s.Do("POST", "/_matrix/client/v3/login", "", loginBody("alice", "bad guess")).Expect(t, 403, "M_FORBIDDEN")
		}
		r := s.Do("POST", "/_matrix/client/v3/login", "", loginBody("alice", testPassword)).Expect(t, 429, "M_LIMIT_EXCEEDED")
		if r.Header.Get("Retry-After") == "" || r.Body["retry_after_ms"] == nil {
			t.Fatalf("429 without Retry-After or retry_after_ms: %v %s", r.Header, r.Raw)
		}
	}, func(c *config.Config) {
		c.Client.RateLimits.FailedLogin = config.RateLimit{PerSecond: 0.001, Burst: 3}
	})
}

func TestDiscoveryEndpoints(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		v := s.Do("GET", "/_matrix/client/versions", "", nil).Expect(t, 200, "")
		if !strings.Contains(string(v.Raw), `"v1.1"`) {
			t.Fatalf("versions: %s", v.Raw)
		}
		wk := s.Do("GET", "/.well-known/matrix/client", "", nil).Expect(t, 200, "")
		if wk.Body["m.homeserver"].(map[string]any)["base_url"] != "https://matrix.test.local" {
			t.Fatalf("well-known client: %s", wk.Raw)
		}
		srv := s.Do("GET", "/.well-known/matrix/server", "", nil).Expect(t, 200, "")
		if srv.Body["m.server"] != "matrix.test.local:443" {
			t.Fatalf("well-known server: %s", srv.Raw)
		}
		caps := s.Do("GET", "/_matrix/client/v3/capabilities", alice.AccessToken, nil).Expect(t, 200, "")
		rv := caps.Body["capabilities"].(map[string]any)["m.room_versions"].(map[string]any)
		if rv["default"] != "12" {
			t.Fatalf("capabilities: %s", caps.Raw)
		}
		s.Do("GET", "/_matrix/client/v3/capabilities", "", nil).Expect(t, 401, "M_MISSING_TOKEN")
		if r := s.Do("GET", "/_matrix/client/v3/account/3pid", alice.AccessToken, nil).Expect(t, 200, ""); string(r.Raw) != `{"threepids":[]}` {
			t.Fatalf("3pid: %s", r.Raw)
		}
		if r := s.Do("GET", "/_matrix/client/v3/thirdparty/protocols", alice.AccessToken, nil).Expect(t, 200, ""); string(r.Raw) != `{}` {
			t.Fatalf("thirdparty/protocols: %s", r.Raw)
		}
		if r := s.Do("GET", "/_matrix/client/v3/login", "", nil).Expect(t, 200, ""); !strings.Contains(string(r.Raw), "m.login.password") {
			t.Fatalf("login flows: %s", r.Raw)
		}
		// r0 paths answer too, for older clients and bridges.
		s.Do("GET", "/_matrix/client/r0/account/whoami", alice.AccessToken, nil).Expect(t, 200, "")
	}, func(c *config.Config) {
		c.Client.PublicBaseURL = "https://matrix.test.local"
		c.Client.WellKnownServer = "matrix.test.local:443"
	})
}
