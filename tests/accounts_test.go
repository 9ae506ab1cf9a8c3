package tests

import (
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
)

// TestAccountLifecycle is the foundation's end-to-end path: register
// through the shared secret, log in, whoami, list devices, delete one
// through UIA, log out, and see the token refused.
func TestAccountLifecycle(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		if alice.UserID != "@alice:"+serverName || alice.AccessToken == "" || alice.DeviceID == "" {
			t.Fatalf("register: got %s %q %q", alice.UserID, alice.AccessToken, alice.DeviceID)
		}
		phone := s.Login(alice.UserID)
		if phone.DeviceID == alice.DeviceID {
			t.Fatal("a second login must get a new device")
		}

		who, err := phone.Whoami(ctx())
		if err != nil || who.UserID != alice.UserID || who.DeviceID != phone.DeviceID {
			t.Fatalf("whoami: %+v %v", who, err)
		}

		devs, err := alice.GetDevicesInfo(ctx())
		if err != nil || len(devs.Devices) != 2 {
			t.Fatalf("devices: %+v %v", devs, err)
		}

		// Deleting a device without auth gets the UIA challenge (read raw:
		// mautrix does not keep the body of error responses)...
		r := s.Do("DELETE", "/_matrix/client/v3/devices/"+string(phone.DeviceID), alice.AccessToken, map[string]any{}).Expect(t, 401, "")
		uia := parseUIA(t, string(r.Raw))
		if len(uia.Flows) == 0 || uia.Flows[0].Stages[0] != mautrix.AuthTypePassword || uia.Session == "" {
			t.Fatalf("challenge: %s", r.Raw)
		}
		// ...a wrong password is refused within the session...
		err = alice.DeleteDevice(ctx(), phone.DeviceID, &mautrix.ReqDeleteDevice[any]{Auth: passwordAuth(alice.UserID, "wrong password", uia.Session)})
		if errcode(err) != "M_FORBIDDEN" {
			t.Fatalf("delete with wrong password: want M_FORBIDDEN, got %v", err)
		}
		// ...and the right one completes it.
		if err := alice.DeleteDevice(ctx(), phone.DeviceID, &mautrix.ReqDeleteDevice[any]{Auth: passwordAuth(alice.UserID, testPassword, uia.Session)}); err != nil {
			t.Fatalf("delete with password: %v", err)
		}
		if _, err := phone.Whoami(ctx()); errcode(err) != "M_UNKNOWN_TOKEN" {
			t.Fatalf("deleted device's token: want M_UNKNOWN_TOKEN, got %v", err)
		}
		devs, err = alice.GetDevicesInfo(ctx())
		if err != nil || len(devs.Devices) != 1 || devs.Devices[0].DeviceID != alice.DeviceID {
			t.Fatalf("devices after delete: %+v %v", devs, err)
		}

		token := alice.AccessToken
		if _, err := alice.Logout(ctx()); err != nil {
			t.Fatalf("logout: %v", err)
		}
		r = s.Do("GET", "/_matrix/client/v3/account/whoami", token, nil).Expect(t, 401, "M_UNKNOWN_TOKEN")
		if r.Body["soft_logout"] != false {
			t.Fatalf("logged-out token: want soft_logout false, got %s", r.Raw)
		}
		// Logout deleted the device too.
		again := s.Login(alice.UserID)
		devs, err = again.GetDevicesInfo(ctx())
		if err != nil || len(devs.Devices) != 1 {
			t.Fatalf("devices after logout: %+v %v", devs, err)
		}
	})
}

func TestRestartKeepsAccountsDevicesAndTokens(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		s.Login(alice.UserID)
		s.Restart()
		alice.HomeserverURL = mustParseURL(t, s.URL)
		who, err := alice.Whoami(ctx())
		if err != nil || who.UserID != alice.UserID || who.DeviceID != alice.DeviceID {
			t.Fatalf("whoami after restart: %+v %v", who, err)
		}
		devs, err := alice.GetDevicesInfo(ctx())
		if err != nil || len(devs.Devices) != 2 {
			t.Fatalf("devices after restart: %+v %v", devs, err)
		}
		s.Login(alice.UserID)
	})
}

func TestLogoutAllAndPasswordChange(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		other := s.Login(alice.UserID)

		// Password change behind UIA logs the other devices out.
		req := map[string]any{"new_password": "a new long password", "auth": passwordAuth(alice.UserID, testPassword, "")}
		s.Do("POST", "/_matrix/client/v3/account/password", alice.AccessToken, req).Expect(t, 200, "")
		if _, err := other.Whoami(ctx()); errcode(err) != "M_UNKNOWN_TOKEN" {
			t.Fatalf("other device after password change: got %v", err)
		}
		if _, err := alice.Whoami(ctx()); err != nil {
			t.Fatalf("changing device after password change: %v", err)
		}
		s.Do("POST", "/_matrix/client/v3/login", "", loginBody("alice", testPassword)).Expect(t, 403, "M_FORBIDDEN")
		second := s.Do("POST", "/_matrix/client/v3/login", "", loginBody("alice", "a new long password")).Expect(t, 200, "")

		s.Do("POST", "/_matrix/client/v3/logout/all", alice.AccessToken, nil).Expect(t, 200, "")
		for _, tok := range []string{alice.AccessToken, second.Body["access_token"].(string)} {
			s.Do("GET", "/_matrix/client/v3/account/whoami", tok, nil).Expect(t, 401, "M_UNKNOWN_TOKEN")
		}
	})
}

func TestDeactivate(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		s.Do("POST", "/_matrix/client/v3/account/deactivate", alice.AccessToken, map[string]any{}).Expect(t, 401, "")
		r := s.Do("POST", "/_matrix/client/v3/account/deactivate", alice.AccessToken,
			map[string]any{"auth": passwordAuth(alice.UserID, testPassword, "")}).Expect(t, 200, "")
		if r.Body["id_server_unbind_result"] != "no-support" {
			t.Fatalf("deactivate: %s", r.Raw)
		}
		s.Do("GET", "/_matrix/client/v3/account/whoami", alice.AccessToken, nil).Expect(t, 401, "M_UNKNOWN_TOKEN")
		s.Do("POST", "/_matrix/client/v3/login", "", loginBody("alice", testPassword)).Expect(t, 403, "M_USER_DEACTIVATED")
		// The id is never given out again.
		if _, err := s.RegisterErr("alice"); errcode(err) != "M_USER_IN_USE" {
			t.Fatalf("re-register a deactivated id: want M_USER_IN_USE, got %v", err)
		}
	})
}

func TestRegistrationTokens(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		if err := s.CreateRegistrationToken("letmein", 1); err != nil {
			t.Fatal(err)
		}
		r := s.Do("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=letmein", "", nil).Expect(t, 200, "")
		if r.Body["valid"] != true {
			t.Fatalf("validity: %s", r.Raw)
		}
		body := map[string]any{"username": "bob", "password": testPassword, "initial_device_display_name": "Bob's laptop"}
		r = s.Do("POST", "/_matrix/client/v3/register", "", body).Expect(t, 401, "")
		if !strings.Contains(string(r.Raw), "m.login.registration_token") || strings.Contains(string(r.Raw), "m.login.dummy") {
			t.Fatalf("flows must offer the token and not dummy: %s", r.Raw)
		}
		session := r.Body["session"].(string)
		body["auth"] = map[string]any{"type": "m.login.registration_token", "token": "wrong", "session": session}
		s.Do("POST", "/_matrix/client/v3/register", "", body).Expect(t, 401, "M_UNAUTHORIZED")
		body["auth"] = map[string]any{"type": "m.login.registration_token", "token": "letmein", "session": session}
		r = s.Do("POST", "/_matrix/client/v3/register", "", body).Expect(t, 200, "")
		if r.Body["user_id"] != "@bob:"+serverName || r.Body["access_token"] == nil {
			t.Fatalf("register: %s", r.Raw)
		}
		dev := s.Do("GET", "/_matrix/client/v3/devices/"+r.Body["device_id"].(string), r.Body["access_token"].(string), nil).Expect(t, 200, "")
		if dev.Body["display_name"] != "Bob's laptop" {
			t.Fatalf("device name: %s", dev.Raw)
		}
		// The token had one use.
		r = s.Do("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=letmein", "", nil).Expect(t, 200, "")
		if r.Body["valid"] != false {
			t.Fatalf("used-up token still valid: %s", r.Raw)
		}
		body = map[string]any{"username": "carol", "password": testPassword,
			"auth": map[string]any{"type": "m.login.registration_token", "token": "letmein"}}
		s.Do("POST", "/_matrix/client/v3/register", "", body).Expect(t, 401, "M_UNAUTHORIZED")
		s.Do("GET", "/_matrix/client/v3/register/available?username=bob", "", nil).Expect(t, 400, "M_USER_IN_USE")
		r = s.Do("GET", "/_matrix/client/v3/register/available?username=carol", "", nil).Expect(t, 200, "")
		if r.Body["available"] != true {
			t.Fatalf("available: %s", r.Raw)
		}
	}, func(c *config.Config) { c.Client.Registration.Enabled = true })
}

func TestOpenRegistrationWithDummy(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		resp, err := s.Client().RegisterDummy(ctx(), &mautrix.ReqRegister[any]{Username: "dave", Password: testPassword})
		if err != nil || resp.UserID != "@dave:"+serverName {
			t.Fatalf("register with dummy: %+v %v", resp, err)
		}
	}, func(c *config.Config) { c.Client.Registration.Enabled = true; c.Client.Registration.AllowDummy = true })
}

func TestRefreshTokens(t *testing.T) {
	const tokenLifetime = 2 * time.Second
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		s.Register("alice")
		body := loginBody("alice", testPassword)
		body["refresh_token"] = true
		loggedIn := time.Now()
		r := s.Do("POST", "/_matrix/client/v3/login", "", body).Expect(t, 200, "")
		access, refresh := r.Body["access_token"].(string), r.Body["refresh_token"].(string)
		if refresh == "" || r.Body["expires_in_ms"].(float64) <= 0 {
			t.Fatalf("login with refresh_token: %s", r.Raw)
		}
		s.Do("GET", "/_matrix/client/v3/account/whoami", access, nil).Expect(t, 200, "")
		// The access token lives tokenLifetime here (long enough for the
		// whoami above on a busy machine); past it the client is soft
		// logged out and may refresh.
		time.Sleep(time.Until(loggedIn.Add(tokenLifetime + 100*time.Millisecond)))
		r = s.Do("GET", "/_matrix/client/v3/account/whoami", access, nil).Expect(t, 401, "M_UNKNOWN_TOKEN")
		if r.Body["soft_logout"] != true {
			t.Fatalf("expired token: want soft_logout true, got %s", r.Raw)
		}
		r = s.Do("POST", "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh}).Expect(t, 200, "")
		access2, refresh2 := r.Body["access_token"].(string), r.Body["refresh_token"].(string)
		if access2 == access || refresh2 == refresh {
			t.Fatalf("refresh must mint new tokens: %s", r.Raw)
		}
		s.Do("GET", "/_matrix/client/v3/account/whoami", access2, nil).Expect(t, 200, "")
		// Once the new pair is used, the old refresh token is revoked.
		s.Do("POST", "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh}).Expect(t, 401, "M_UNKNOWN_TOKEN")
		s.Do("POST", "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": "mrt_nonsense"}).Expect(t, 401, "M_UNKNOWN_TOKEN")
	}, func(c *config.Config) { c.Client.Auth.AccessTokenLifetime = config.Duration(tokenLifetime) })
}

// loginBody is a password login request for user.
func loginBody(user, password string) map[string]any {
	return map[string]any{"type": "m.login.password", "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": user}}
}

// passwordAuth is the UIA auth dict of the m.login.password stage.
func passwordAuth(user id.UserID, password, session string) map[string]any {
	a := map[string]any{"type": "m.login.password", "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": user.String()}}
	if session != "" {
		a["session"] = session
	}
	return a
}
