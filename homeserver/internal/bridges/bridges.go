// Package bridges serves the client-server endpoints that talk to
// application services: the ping an application service asks for (POST
// /_matrix/client/v1/appservice/{appserviceId}/ping) and the third-party
// lookups (/thirdparty/*), forwarded to the bridges that declare the
// protocol. The questions go through appservices/api.Querier.
package bridges

import (
	"errors"
	"net/http"

	asapi "github.com/matrix-gouv/homeserver/appservices/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Handlers serves the endpoints.
type Handlers struct {
	bridges         asapi.Querier
	maxRequestBytes int64
}

// New returns the handlers over bridges.
func New(bridges asapi.Querier, maxRequestBytes int64) *Handlers {
	return &Handlers{bridges: bridges, maxRequestBytes: maxRequestBytes}
}

// Ping is POST /_matrix/client/v1/appservice/{appserviceId}/ping: the
// application service asks the server to ping it, to check that both
// directions work.
func (h *Handlers) Ping(r *http.Request) (any, error) {
	id := httputil.PathParam(r, "appserviceID")
	if auth.DeviceFrom(r.Context()).AppServiceID != id {
		return nil, httputil.Forbidden("only the application service itself may ask for its ping")
	}
	var req struct {
		TransactionID string `json:"transaction_id"`
	}
	if err := httputil.DecodeJSON(r, h.maxRequestBytes, &req); err != nil {
		return nil, err
	}
	took, err := h.bridges.Ping(r.Context(), id, req.TransactionID)
	var pe *asapi.PingError
	switch {
	case errors.As(err, &pe):
		switch httputil.Code(pe.Code) {
		case httputil.CodeURLNotSet:
			return nil, httputil.Errorf(httputil.CodeURLNotSet, "the application service has no url").WithStatus(http.StatusBadRequest)
		case httputil.CodeConnectionTimeout:
			return nil, httputil.Errorf(httputil.CodeConnectionTimeout, "the application service did not answer in time").WithStatus(http.StatusGatewayTimeout)
		case httputil.CodeBadStatus:
			return nil, httputil.Errorf(httputil.CodeBadStatus, "the application service answered with an error").
				WithStatus(http.StatusBadGateway).With("status", pe.Status).With("body", pe.Body)
		}
		return nil, httputil.Errorf(httputil.CodeConnectionFailed, "could not reach the application service").WithStatus(http.StatusBadGateway)
	case errors.Is(err, asapi.ErrUnknownAppService):
		return nil, httputil.Forbidden("unknown application service")
	case err != nil:
		return nil, err
	}
	return map[string]int64{"duration_ms": took}, nil
}

// Protocols is GET /thirdparty/protocols.
func (h *Handlers) Protocols(r *http.Request) (any, error) {
	return h.bridges.Protocols(r.Context())
}

// Protocol is GET /thirdparty/protocol/{protocol}.
func (h *Handlers) Protocol(r *http.Request) (any, error) {
	raw, err := h.bridges.Protocol(r.Context(), httputil.PathParam(r, "protocol"))
	if errors.Is(err, asapi.ErrUnknownProtocol) {
		return nil, httputil.NotFound("unknown protocol")
	}
	return raw, err
}

// Location is GET /thirdparty/location/{protocol}.
func (h *Handlers) Location(r *http.Request) (any, error) { return h.lookup(r, "location", true) }

// User is GET /thirdparty/user/{protocol}.
func (h *Handlers) User(r *http.Request) (any, error) { return h.lookup(r, "user", true) }

// LocationByAlias is GET /thirdparty/location?alias=.
func (h *Handlers) LocationByAlias(r *http.Request) (any, error) {
	if r.URL.Query().Get("alias") == "" {
		return nil, httputil.MissingParam("alias is required")
	}
	return h.lookup(r, "location", false)
}

// UserByID is GET /thirdparty/user?userid=.
func (h *Handlers) UserByID(r *http.Request) (any, error) {
	if r.URL.Query().Get("userid") == "" {
		return nil, httputil.MissingParam("userid is required")
	}
	return h.lookup(r, "user", false)
}

func (h *Handlers) lookup(r *http.Request, kind string, byProtocol bool) (any, error) {
	protocol := ""
	if byProtocol {
		protocol = httputil.PathParam(r, "protocol")
	}
	q := r.URL.Query()
	q.Del("access_token")
	out, err := h.bridges.ThirdParty(r.Context(), kind, protocol, q)
	if errors.Is(err, asapi.ErrUnknownProtocol) {
		return nil, httputil.NotFound("unknown protocol")
	}
	return out, err
}
