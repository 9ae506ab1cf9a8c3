package push

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/internal/pushrules"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// Cache bounds of compiled rules.
const (
	// rulesTTL bounds how long a compiled ruleset is used without looking
	// at the database again: changes made in this process invalidate it
	// at once, changes made by another client process within rulesTTL.
	rulesTTL = time.Minute
	// rulesCacheMax bounds the cache; past it, the cache starts afresh.
	rulesCacheMax = 50_000
)

// Rules reads users' push rules and keeps them compiled, per user.
type Rules struct {
	store    *storage.Store
	notifier AccountDataNotifier
	now      func() time.Time

	// mu guards sets.
	mu   sync.Mutex
	sets map[string]cachedSet
}

type cachedSet struct {
	set    *pushrules.Set
	loaded time.Time
}

func newRules(store *storage.Store, notifier AccountDataNotifier) *Rules {
	return &Rules{store: store, notifier: notifier, now: time.Now, sets: map[string]cachedSet{}}
}

// Ruleset returns userID's whole ruleset: the user's rules and the
// server-default ones with the user's changes.
func (r *Rules) Ruleset(ctx context.Context, userID string) (pushrules.Ruleset, error) {
	stored, overrides, err := r.store.PushRules(ctx, userID)
	if err != nil {
		return pushrules.Ruleset{}, err
	}
	return buildRuleset(userID, stored, overrides)
}

// buildRuleset makes userID's ruleset from its stored rules and overrides.
func buildRuleset(userID string, stored []storage.StoredPushRule, overrides []storage.PushRuleOverride) (pushrules.Ruleset, error) {
	user := make([]pushrules.UserRule, 0, len(stored))
	for _, s := range stored {
		kind, ok := pushrules.ParseKind(s.Kind)
		if !ok {
			continue
		}
		var rule pushrules.Rule
		if err := json.Unmarshal(s.Rule, &rule); err != nil {
			return pushrules.Ruleset{}, fmt.Errorf("decode push rule %s of %s: %w", s.RuleID, userID, err)
		}
		rule.RuleID, rule.Enabled, rule.Default = s.RuleID, s.Enabled, false
		if (kind == pushrules.KindOverride || kind == pushrules.KindUnderride) && rule.Conditions == nil {
			rule.Conditions = []pushrules.Condition{}
		}
		user = append(user, pushrules.UserRule{Kind: kind, Rule: rule})
	}
	ov := make(map[string]pushrules.Override, len(overrides))
	for _, o := range overrides {
		var actions []json.RawMessage
		if o.Actions != nil {
			if err := json.Unmarshal(o.Actions, &actions); err != nil {
				return pushrules.Ruleset{}, fmt.Errorf("decode push rule override %s of %s: %w", o.RuleID, userID, err)
			}
			if actions == nil {
				actions = []json.RawMessage{}
			}
		}
		ov[o.RuleID] = pushrules.Override{Enabled: o.Enabled, Actions: actions}
	}
	return pushrules.Build(userID, user, ov), nil
}

// AccountDataContent returns the content of userID's m.push_rules
// account data event: {"global": ruleset}.
func (r *Rules) AccountDataContent(ctx context.Context, userID string) (json.RawMessage, error) {
	rs, err := r.Ruleset(ctx, userID)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(struct {
		Global pushrules.Ruleset `json:"global"`
	}{rs})
	if err != nil {
		return nil, fmt.Errorf("encode push rules: %w", err)
	}
	return b, nil
}

// compiled returns userID's rules compiled, from the cache when fresh.
func (r *Rules) compiled(ctx context.Context, userID string) (*pushrules.Set, error) {
	now := r.now()
	r.mu.Lock()
	c, ok := r.sets[userID]
	r.mu.Unlock()
	if ok && now.Sub(c.loaded) < rulesTTL {
		return c.set, nil
	}
	rs, err := r.Ruleset(ctx, userID)
	if err != nil {
		return nil, err
	}
	set := pushrules.Compile(rs)
	r.mu.Lock()
	if len(r.sets) >= rulesCacheMax {
		r.sets = map[string]cachedSet{}
	}
	r.sets[userID] = cachedSet{set: set, loaded: now}
	r.mu.Unlock()
	return set, nil
}

// preload compiles and caches the rules of those of userIDs not cached
// (or stale), reading them all in a few queries: the first event of a big
// room after a start must not read the rules of each member in turn.
func (r *Rules) preload(ctx context.Context, userIDs []string) error {
	now := r.now()
	var missing []string
	r.mu.Lock()
	for _, u := range userIDs {
		if c, ok := r.sets[u]; !ok || now.Sub(c.loaded) >= rulesTTL {
			missing = append(missing, u)
		}
	}
	r.mu.Unlock()
	if len(missing) < 2 {
		return nil
	}
	stored, overrides, err := r.store.PushRulesOfUsers(ctx, missing)
	if err != nil {
		return err
	}
	sets := make(map[string]*pushrules.Set, len(missing))
	for _, u := range missing {
		rs, err := buildRuleset(u, stored[u], overrides[u])
		if err != nil {
			return err
		}
		sets[u] = pushrules.Compile(rs)
	}
	r.mu.Lock()
	if len(r.sets)+len(sets) > rulesCacheMax {
		r.sets = map[string]cachedSet{}
	}
	for u, set := range sets {
		r.sets[u] = cachedSet{set: set, loaded: now}
	}
	r.mu.Unlock()
	return nil
}

// changed forgets userID's compiled rules and tells the notifier.
func (r *Rules) changed(ctx context.Context, userID string) error {
	r.mu.Lock()
	delete(r.sets, userID)
	r.mu.Unlock()
	if r.notifier == nil {
		return nil
	}
	if err := r.notifier.Changed(ctx, userID); err != nil {
		return fmt.Errorf("notify push rules change: %w", err)
	}
	return nil
}
