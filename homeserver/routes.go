package homeserver

import (
	"github.com/go-chi/chi/v5"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// route is one line of the client-server API's route table.
type route struct {
	method, path string
	h            httputil.HandlerFunc
}

// Mount adds the client-server API's routes to r: one flat table for the
// open endpoints and one for those behind an access token. Paths are given
// under /_matrix/client/{v3,r0} unless they start with "/".
func (c *Component) Mount(r chi.Router) {
	a, i := c.account, c.info
	open := []route{
		{"GET", "/_matrix/client/versions", i.Versions},
		{"GET", "/.well-known/matrix/client", i.WellKnownClient},
		{"GET", "/.well-known/matrix/server", i.WellKnownServer},
		{"GET", "/_synapse/admin/v1/register", a.SharedSecretNonce},
		{"POST", "/_synapse/admin/v1/register", a.SharedSecretRegister},
		{"GET", "/_matrix/client/v1/register/m.login.registration_token/validity", a.TokenValidity},
		{"POST", "register", a.Register},
		{"GET", "register/available", a.Available},
		{"GET", "login", a.LoginFlows},
		{"POST", "login", a.Login},
		{"POST", "refresh", a.Refresh},
	}
	authed := []route{
		{"GET", "account/whoami", a.Whoami},
		{"POST", "logout", a.Logout},
		{"POST", "logout/all", a.LogoutAll},
		{"GET", "devices", a.Devices},
		{"GET", "devices/{deviceID}", a.Device},
		{"PUT", "devices/{deviceID}", a.UpdateDevice},
		{"DELETE", "devices/{deviceID}", a.DeleteDevice},
		{"POST", "delete_devices", a.DeleteDevices},
		{"POST", "account/password", a.ChangePassword},
		{"POST", "account/deactivate", a.Deactivate},
		{"GET", "account/3pid", a.ThreePIDs},
		{"GET", "capabilities", i.Capabilities},
		{"GET", "thirdparty/protocols", i.ThirdPartyProtocols},
	}
	mount(r, open)
	r.Group(func(r chi.Router) {
		r.Use(c.auth.Require)
		mount(r, authed)
	})
}

// clientPrefixes are the path prefixes a relative route is served under:
// v3 and its predecessor r0, which some clients and bridges still call.
var clientPrefixes = []string{"/_matrix/client/v3/", "/_matrix/client/r0/"}

func mount(r chi.Router, routes []route) {
	for _, rt := range routes {
		h := httputil.Handle(rt.h)
		if rt.path[0] == '/' {
			r.Method(rt.method, rt.path, h)
			continue
		}
		for _, p := range clientPrefixes {
			r.Method(rt.method, p+rt.path, h)
		}
	}
}
