package appservices

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/matrix-gouv/homeserver/appservices/storage"
	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// AdminPath lists the registrations and their queues (this server's own
// admin path, next to Synapse's).
const AdminPath = "/_synapse/admin/v1/appservices"

// Mount adds the admin route to the client listener's router.
func (c *Component) Mount(r chi.Router) {
	r.Method(http.MethodGet, AdminPath, httputil.Handle(c.adminList))
}

// adminAppService is one registration as the admin sees it: never its
// tokens.
type adminAppService struct {
	ID            string   `json:"id"`
	URL           *string  `json:"url"`
	SenderUserID  string   `json:"sender_user_id"`
	File          string   `json:"file"`
	RateLimited   bool     `json:"rate_limited"`
	Protocols     []string `json:"protocols,omitempty"`
	Ephemeral     bool     `json:"receive_ephemeral"`
	MSC3202       bool     `json:"msc3202"`
	MSC4190       bool     `json:"msc4190"`
	PendingEvents int64    `json:"pending_events"`
	PendingTxnID  int64    `json:"pending_txn_id,omitempty"`
	LastSuccessTS int64    `json:"last_success_ts,omitempty"`
	LastError     string   `json:"last_error,omitempty"`
	LastErrorTS   int64    `json:"last_error_ts,omitempty"`
	FirstSeenTS   int64    `json:"first_seen_ts,omitempty"`
	QueueKnown    bool     `json:"queue_known"`
}

// adminList is GET AdminPath, for server admins.
func (c *Component) adminList(r *http.Request) (any, error) {
	token, err := httputil.AccessToken(r)
	if err != nil {
		return nil, err
	}
	dev, err := c.tokens.QueryAccessToken(r.Context(), token)
	switch {
	case errors.Is(err, hsapi.ErrSoftLogout):
		return nil, httputil.UnknownToken(true)
	case errors.Is(err, hsapi.ErrUnknownToken):
		return nil, httputil.UnknownToken(false)
	case err != nil:
		return nil, fmt.Errorf("query access token: %w", err)
	case !dev.IsAdmin:
		return nil, httputil.Forbidden("you are not a server admin")
	}
	out := []adminAppService{}
	for _, as := range c.cfg.Registrations {
		a := adminAppService{ID: as.ID, URL: as.URL, SenderUserID: as.SenderID(), File: as.File, RateLimited: as.IsRateLimited(),
			Protocols: as.Protocols, Ephemeral: as.WantsEphemeral(), MSC3202: as.MSC3202, MSC4190: as.MSC4190}
		st, err := c.store.QueueState(r.Context(), as.ID)
		if err == nil {
			a.QueueKnown = true
			a.PendingEvents, a.PendingTxnID, a.LastSuccessTS = st.Pending, st.PendingTxn, st.LastSuccessTS
			a.LastError, a.LastErrorTS, a.FirstSeenTS = st.LastError, st.LastErrorTS, st.CreatedTS
		} else if !errors.Is(err, storage.ErrNoState) {
			return nil, err
		}
		out = append(out, a)
	}
	return map[string]any{"appservices": out, "total": len(out)}, nil
}
