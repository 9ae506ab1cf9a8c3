package push

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/pushrules"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// maxRuleBody bounds the body of a push rule request.
const maxRuleBody = 65536

// Handlers serves /pushrules, /pushers and /notifications.
type Handlers struct {
	rules    *Rules
	store    *storage.Store
	rooms    RoomReader
	receipts ReceiptPositions
	cfg      *config.Push
	// wake tells the Sender that pushes may be due.
	wake func()
}

// GetRules serves GET /pushrules/: {"global": ruleset}.
func (h *Handlers) GetRules(r *http.Request) (any, error) {
	rs, err := h.rules.Ruleset(r.Context(), auth.DeviceFrom(r.Context()).UserID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"global": rs}, nil
}

// GetGlobalRules serves GET /pushrules/global/.
func (h *Handlers) GetGlobalRules(r *http.Request) (any, error) {
	return h.rules.Ruleset(r.Context(), auth.DeviceFrom(r.Context()).UserID)
}

// ruleTarget is the kind and rule id of a /pushrules/global/{kind}/{ruleID}
// request.
type ruleTarget struct {
	userID string
	kind   pushrules.Kind
	ruleID string
}

func target(r *http.Request) (ruleTarget, error) {
	kind, ok := pushrules.ParseKind(httputil.PathParam(r, "kind"))
	if !ok {
		return ruleTarget{}, httputil.InvalidParam("unknown push rule kind %q", httputil.PathParam(r, "kind"))
	}
	id := httputil.PathParam(r, "ruleID")
	if id == "" {
		return ruleTarget{}, httputil.InvalidParam("missing rule id")
	}
	return ruleTarget{userID: auth.DeviceFrom(r.Context()).UserID, kind: kind, ruleID: id}, nil
}

// find returns the rule t names in the user's ruleset, or 404.
func (h *Handlers) find(r *http.Request, t ruleTarget) (pushrules.Rule, error) {
	rs, err := h.rules.Ruleset(r.Context(), t.userID)
	if err != nil {
		return pushrules.Rule{}, err
	}
	rule, ok := rs.Find(t.kind, t.ruleID)
	if !ok {
		return pushrules.Rule{}, httputil.NotFound("no push rule %s of kind %s", t.ruleID, t.kind)
	}
	return rule, nil
}

// GetRule serves GET /pushrules/global/{kind}/{ruleID}.
func (h *Handlers) GetRule(r *http.Request) (any, error) {
	t, err := target(r)
	if err != nil {
		return nil, err
	}
	return h.find(r, t)
}

// putRuleBody is the body of PUT /pushrules/global/{kind}/{ruleID}.
type putRuleBody struct {
	Actions    *[]json.RawMessage     `json:"actions"`
	Conditions *[]pushrules.Condition `json:"conditions"`
	Pattern    *string                `json:"pattern"`
}

// storedRule is the JSON stored for a user's rule.
type storedRule struct {
	Conditions *[]pushrules.Condition `json:"conditions,omitempty"`
	Pattern    *string                `json:"pattern,omitempty"`
	Actions    []json.RawMessage      `json:"actions"`
}

// PutRule serves PUT /pushrules/global/{kind}/{ruleID}: it adds or
// replaces a user-defined rule, placed by the before or after query
// parameter. Server-default rules change only through /enabled and
// /actions.
func (h *Handlers) PutRule(r *http.Request) (any, error) {
	t, err := target(r)
	if err != nil {
		return nil, err
	}
	if pushrules.IsServerDefault(t.ruleID) {
		return nil, httputil.Errorf(httputil.CodeUnknown, "cannot add or replace a server-default rule (ids starting with '.')").WithStatus(http.StatusBadRequest)
	}
	if strings.ContainsAny(t.ruleID, `/\`) {
		return nil, httputil.InvalidParam("a rule id may not contain slashes or backslashes")
	}
	q := r.URL.Query()
	before, after := q.Get("before"), q.Get("after")
	if before != "" && after != "" {
		return nil, httputil.InvalidParam("give before or after, not both")
	}
	if pushrules.IsServerDefault(before) || pushrules.IsServerDefault(after) {
		return nil, httputil.Errorf(httputil.CodeUnknown, "before and after must name a user-defined rule").WithStatus(http.StatusBadRequest)
	}
	var body putRuleBody
	if err := httputil.DecodeJSON(r, maxRuleBody, &body); err != nil {
		return nil, err
	}
	if body.Actions == nil {
		return nil, httputil.MissingParam("missing actions")
	}
	if err := pushrules.ValidateActions(*body.Actions); err != nil {
		return nil, httputil.InvalidParam("%v", err)
	}
	stored := storedRule{Actions: *body.Actions}
	switch t.kind {
	case pushrules.KindOverride, pushrules.KindUnderride:
		conds := []pushrules.Condition{}
		if body.Conditions != nil && *body.Conditions != nil {
			conds = *body.Conditions
		}
		if err := pushrules.ValidateConditions(conds); err != nil {
			return nil, httputil.InvalidParam("%v", err)
		}
		stored.Conditions = &conds
	case pushrules.KindContent:
		if body.Pattern == nil {
			return nil, httputil.MissingParam("a content rule needs a pattern")
		}
		stored.Pattern = body.Pattern
	}
	raw, err := json.Marshal(stored)
	if err != nil {
		return nil, err
	}
	err = h.store.PutPushRule(r.Context(), t.userID, string(t.kind), t.ruleID, raw, before, after)
	if errors.Is(err, storage.ErrPushRuleAnchor) {
		anchor := before + after
		return nil, httputil.Errorf(httputil.CodeUnknown, "before/after rule not found: %s", anchor).WithStatus(http.StatusBadRequest)
	}
	if err != nil {
		return nil, err
	}
	if err := h.rules.changed(r.Context(), t.userID); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// DeleteRule serves DELETE /pushrules/global/{kind}/{ruleID}.
func (h *Handlers) DeleteRule(r *http.Request) (any, error) {
	t, err := target(r)
	if err != nil {
		return nil, err
	}
	if pushrules.IsServerDefault(t.ruleID) {
		if _, err := h.find(r, t); err != nil {
			return nil, err
		}
		return nil, httputil.Errorf(httputil.CodeUnknown, "cannot delete a server-default rule").WithStatus(http.StatusBadRequest)
	}
	err = h.store.DeletePushRule(r.Context(), t.userID, string(t.kind), t.ruleID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.NotFound("no push rule %s of kind %s", t.ruleID, t.kind)
	}
	if err != nil {
		return nil, err
	}
	if err := h.rules.changed(r.Context(), t.userID); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// GetEnabled serves GET /pushrules/global/{kind}/{ruleID}/enabled.
func (h *Handlers) GetEnabled(r *http.Request) (any, error) {
	t, err := target(r)
	if err != nil {
		return nil, err
	}
	rule, err := h.find(r, t)
	if err != nil {
		return nil, err
	}
	return map[string]bool{"enabled": rule.Enabled}, nil
}

// PutEnabled serves PUT /pushrules/global/{kind}/{ruleID}/enabled.
func (h *Handlers) PutEnabled(r *http.Request) (any, error) {
	t, err := target(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := httputil.DecodeJSON(r, maxRuleBody, &body); err != nil {
		return nil, err
	}
	if body.Enabled == nil {
		return nil, httputil.MissingParam("missing enabled")
	}
	if _, err := h.find(r, t); err != nil {
		return nil, err
	}
	if pushrules.IsServerDefault(t.ruleID) {
		err = h.store.OverridePushRule(r.Context(), t.userID, t.ruleID, body.Enabled, nil)
	} else {
		err = h.store.UpdatePushRule(r.Context(), t.userID, string(t.kind), t.ruleID, nil, body.Enabled)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.NotFound("no push rule %s of kind %s", t.ruleID, t.kind)
	}
	if err != nil {
		return nil, err
	}
	if err := h.rules.changed(r.Context(), t.userID); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// GetActions serves GET /pushrules/global/{kind}/{ruleID}/actions.
func (h *Handlers) GetActions(r *http.Request) (any, error) {
	t, err := target(r)
	if err != nil {
		return nil, err
	}
	rule, err := h.find(r, t)
	if err != nil {
		return nil, err
	}
	actions := rule.Actions
	if actions == nil {
		actions = []json.RawMessage{}
	}
	return map[string]any{"actions": actions}, nil
}

// PutActions serves PUT /pushrules/global/{kind}/{ruleID}/actions.
func (h *Handlers) PutActions(r *http.Request) (any, error) {
	t, err := target(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Actions *[]json.RawMessage `json:"actions"`
	}
	if err := httputil.DecodeJSON(r, maxRuleBody, &body); err != nil {
		return nil, err
	}
	if body.Actions == nil {
		return nil, httputil.MissingParam("missing actions")
	}
	actions := *body.Actions
	if actions == nil {
		actions = []json.RawMessage{}
	}
	if err := pushrules.ValidateActions(actions); err != nil {
		return nil, httputil.InvalidParam("%v", err)
	}
	rule, err := h.find(r, t)
	if err != nil {
		return nil, err
	}
	if pushrules.IsServerDefault(t.ruleID) {
		raw, err := json.Marshal(actions)
		if err != nil {
			return nil, err
		}
		err = h.store.OverridePushRule(r.Context(), t.userID, t.ruleID, nil, raw)
		if err != nil {
			return nil, err
		}
	} else {
		stored := storedRule{Pattern: rule.Pattern, Actions: actions}
		if rule.Conditions != nil {
			stored.Conditions = &rule.Conditions
		}
		raw, err := json.Marshal(stored)
		if err != nil {
			return nil, err
		}
		err = h.store.UpdatePushRule(r.Context(), t.userID, string(t.kind), t.ruleID, raw, nil)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, httputil.NotFound("no push rule %s of kind %s", t.ruleID, t.kind)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := h.rules.changed(r.Context(), t.userID); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
