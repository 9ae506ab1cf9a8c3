package appservices

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/appservices/api"
	"github.com/matrix-gouv/homeserver/config"
)

// Querier asks the bridges the client API's questions. It holds no state
// but the registrations, so any process may build one.
type Querier struct {
	cfg    *config.AppServices
	client *http.Client
	log    *logrus.Entry
}

// NewQuerier returns a Querier of the registrations in cfg.
func NewQuerier(cfg *config.AppServices, log *logrus.Entry) *Querier {
	return &Querier{cfg: cfg, client: newClient(cfg), log: log}
}

// newClient is the HTTP client of requests to bridges: the configured
// timeout, no redirects (a bridge answers itself).
func newClient(cfg *config.AppServices) *http.Client {
	return &http.Client{
		Timeout:       cfg.Timeout.Std(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// QueryUser implements api.Querier.
func (q *Querier) QueryUser(ctx context.Context, userID string) (bool, error) {
	for _, as := range q.cfg.Registrations {
		if !as.HasURL() || !as.OwnsUser(userID) || userID == as.SenderID() {
			continue
		}
		if _, err := call(ctx, q.client, as, http.MethodGet, appURL(as, "users", userID), nil); err != nil {
			q.logFailure(as, "user query", err)
			continue
		}
		return true, nil
	}
	return false, nil
}

// QueryAlias implements api.Querier.
func (q *Querier) QueryAlias(ctx context.Context, alias string) (bool, error) {
	for _, as := range q.cfg.Registrations {
		if !as.HasURL() || !as.MatchesAlias(alias, false) {
			continue
		}
		if _, err := call(ctx, q.client, as, http.MethodGet, appURL(as, "rooms", alias), nil); err != nil {
			q.logFailure(as, "alias query", err)
			continue
		}
		return true, nil
	}
	return false, nil
}

// logFailure logs a query a bridge did not answer with yes; a 404 is an
// answer ("no such user"), not worth a warning.
func (q *Querier) logFailure(as *config.AppService, what string, err error) {
	var se *statusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return
	}
	q.log.WithError(err).WithField(fieldAppService, as.ID).Warn(what + " failed")
}

// Ping implements api.Querier.
func (q *Querier) Ping(ctx context.Context, id, txnID string) (int64, error) {
	as := q.cfg.ByID(id)
	if as == nil {
		return 0, api.ErrUnknownAppService
	}
	if !as.HasURL() {
		return 0, &api.PingError{Code: "M_URL_NOT_SET"}
	}
	body := map[string]string{}
	if txnID != "" {
		body["transaction_id"] = txnID
	}
	raw, _ := json.Marshal(body) // a map of strings always encodes
	start := time.Now()
	_, err := call(ctx, q.client, as, http.MethodPost, appURL(as, "ping"), raw)
	took := time.Since(start).Milliseconds()
	var se *statusError
	switch {
	case err == nil:
		return took, nil
	case errors.As(err, &se):
		return 0, &api.PingError{Code: "M_BAD_STATUS", Status: se.Status, Body: se.Body}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		return 0, &api.PingError{Code: "M_CONNECTION_TIMEOUT"}
	default:
		return 0, &api.PingError{Code: "M_CONNECTION_FAILED"}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// Protocols implements api.Querier.
func (q *Querier) Protocols(ctx context.Context) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	for _, as := range q.cfg.Registrations {
		if !as.HasURL() {
			continue
		}
		for _, p := range as.Protocols {
			if _, done := out[p]; done {
				continue
			}
			if raw, err := q.protocol(ctx, as, p); err == nil {
				out[p] = raw
			}
		}
	}
	return out, nil
}

// Protocol implements api.Querier.
func (q *Querier) Protocol(ctx context.Context, protocol string) (json.RawMessage, error) {
	for _, as := range q.cfg.Registrations {
		if !as.HasURL() || !declares(as, protocol) {
			continue
		}
		if raw, err := q.protocol(ctx, as, protocol); err == nil {
			return raw, nil
		}
	}
	return nil, api.ErrUnknownProtocol
}

func (q *Querier) protocol(ctx context.Context, as *config.AppService, protocol string) (json.RawMessage, error) {
	raw, err := call(ctx, q.client, as, http.MethodGet, appURL(as, "thirdparty", "protocol", protocol), nil)
	if err != nil {
		q.logFailure(as, "protocol query", err)
		return nil, err
	}
	if !json.Valid(raw) {
		return nil, errors.New("protocol description is not JSON")
	}
	return raw, nil
}

func declares(as *config.AppService, protocol string) bool {
	for _, p := range as.Protocols {
		if p == protocol {
			return true
		}
	}
	return false
}

// ThirdParty implements api.Querier.
func (q *Querier) ThirdParty(ctx context.Context, kind, protocol string, query url.Values) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	found := false
	for _, as := range q.cfg.Registrations {
		if !as.HasURL() || len(as.Protocols) == 0 || (protocol != "" && !declares(as, protocol)) {
			continue
		}
		found = true
		segments := []string{"thirdparty", kind}
		if protocol != "" {
			segments = append(segments, protocol)
		}
		target := appURL(as, segments...)
		if len(query) > 0 {
			target += "?" + query.Encode()
		}
		raw, err := call(ctx, q.client, as, http.MethodGet, target, nil)
		if err != nil {
			q.logFailure(as, "third-party lookup", err)
			continue
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			q.log.WithField(fieldAppService, as.ID).Warn("third-party lookup answer is not a JSON array")
			continue
		}
		out = append(out, items...)
	}
	if !found && protocol != "" {
		return nil, api.ErrUnknownProtocol
	}
	return out, nil
}

var _ api.Querier = (*Querier)(nil)
