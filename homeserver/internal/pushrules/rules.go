// Package pushrules holds the push rules of the spec (client-server API,
// "Push Rules"): their types, the server-default rules, and the evaluator
// that tells which actions a user's rules give an event.
//
// It sits in the homeserver component below homeserver/internal/push (which
// evaluates every event for every member and stores the outcome) and the
// /pushrules handlers; it does no I/O. A user's rules are compiled once
// into a Set (globs turned into matchers, actions parsed), which callers
// cache per user.
package pushrules

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Kind is a kind of push rule, which also fixes its place in the order of
// evaluation: override, content, room, sender, underride.
type Kind string

// The five kinds, in the order they are evaluated.
const (
	KindOverride  Kind = "override"
	KindContent   Kind = "content"
	KindRoom      Kind = "room"
	KindSender    Kind = "sender"
	KindUnderride Kind = "underride"
)

// Kinds lists the kinds in evaluation order.
var Kinds = [...]Kind{KindOverride, KindContent, KindRoom, KindSender, KindUnderride}

// ParseKind returns the kind named s; ok is false for anything else.
func ParseKind(s string) (k Kind, ok bool) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, true
		}
	}
	return "", false
}

// Condition kinds of the spec.
const (
	CondEventMatch              = "event_match"
	CondEventPropertyIs         = "event_property_is"
	CondEventPropertyContains   = "event_property_contains"
	CondContainsDisplayName     = "contains_display_name"
	CondRoomMemberCount         = "room_member_count"
	CondSenderNotificationPerms = "sender_notification_permission"
)

// Condition is one condition of an override or underride rule, as the
// client sends and reads it.
type Condition struct {
	// Kind is one of the Cond constants; a rule with a condition of an
	// unknown kind never matches (spec).
	Kind string `json:"kind"`
	// Key is the dotted path (event_match, event_property_*) or the
	// notification key (sender_notification_permission).
	Key string `json:"key,omitempty"`
	// Pattern is event_match's glob; a pointer because "" is a pattern
	// (the tombstone rule's state_key).
	Pattern *string `json:"pattern,omitempty"`
	// Value is event_property_is's and event_property_contains's value:
	// a string, an integer, a boolean or null.
	Value json.RawMessage `json:"value,omitempty"`
	// Is is room_member_count's comparison: "2", "==2", "<10", ">=3"...
	Is string `json:"is,omitempty"`
}

// Rule is one push rule as GET /pushrules returns it.
type Rule struct {
	RuleID  string `json:"rule_id"`
	Default bool   `json:"default"`
	Enabled bool   `json:"enabled"`
	// Conditions is set (possibly empty) on override and underride rules
	// only; nil elsewhere.
	Conditions []Condition `json:"-"`
	// Pattern is set on content rules only.
	Pattern *string `json:"pattern,omitempty"`
	// Actions are kept as the client wrote them (validated by
	// ValidateActions), so that unknown tweaks round-trip.
	Actions []json.RawMessage `json:"actions"`
}

// MarshalJSON writes conditions when the rule has them, even empty (the
// master rule's "conditions": []).
func (r Rule) MarshalJSON() ([]byte, error) {
	type plain Rule
	w := struct {
		plain
		Conditions *[]Condition `json:"conditions,omitempty"`
	}{plain: plain(r)}
	if r.Conditions != nil {
		w.Conditions = &r.Conditions
	}
	if w.Actions == nil {
		w.Actions = []json.RawMessage{}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a rule written by MarshalJSON.
func (r *Rule) UnmarshalJSON(b []byte) error {
	type plain Rule
	var w struct {
		plain
		Conditions *[]Condition `json:"conditions"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Rule(w.plain)
	if w.Conditions != nil {
		r.Conditions = *w.Conditions
		if r.Conditions == nil {
			r.Conditions = []Condition{}
		}
	}
	return nil
}

// Ruleset is a user's global rules, by kind, each list in evaluation
// order: the content of m.push_rules' "global".
type Ruleset struct {
	Override  []Rule `json:"override"`
	Content   []Rule `json:"content"`
	Room      []Rule `json:"room"`
	Sender    []Rule `json:"sender"`
	Underride []Rule `json:"underride"`
}

// Of returns the rules of kind k.
func (rs *Ruleset) Of(k Kind) []Rule {
	switch k {
	case KindOverride:
		return rs.Override
	case KindContent:
		return rs.Content
	case KindRoom:
		return rs.Room
	case KindSender:
		return rs.Sender
	default:
		return rs.Underride
	}
}

// set replaces the rules of kind k.
func (rs *Ruleset) set(k Kind, rules []Rule) {
	switch k {
	case KindOverride:
		rs.Override = rules
	case KindContent:
		rs.Content = rules
	case KindRoom:
		rs.Room = rules
	case KindSender:
		rs.Sender = rules
	default:
		rs.Underride = rules
	}
}

// Find returns the rule of kind k with id ruleID.
func (rs *Ruleset) Find(k Kind, ruleID string) (Rule, bool) {
	for _, r := range rs.Of(k) {
		if r.RuleID == ruleID {
			return r, true
		}
	}
	return Rule{}, false
}

// IsServerDefault reports whether ruleID names a server-default rule's id
// space (they all start with a dot).
func IsServerDefault(ruleID string) bool { return len(ruleID) > 0 && ruleID[0] == '.' }

// UserRule is a rule the user defined, as stored: its kind and place
// among the user's rules of that kind come with it.
type UserRule struct {
	Kind Kind
	Rule Rule
}

// Override is the user's change to a server-default rule: enabled and
// actions, each nil when unchanged.
type Override struct {
	Enabled *bool
	Actions []json.RawMessage
}

// Build returns userID's full ruleset: user rules (in the order given,
// within each kind) before the server-default rules of their kind, except
// .m.rule.master which always comes first; overrides change the defaults'
// enabled flag and actions.
func Build(userID string, user []UserRule, overrides map[string]Override) Ruleset {
	defs := Defaults(userID)
	var out Ruleset
	for _, k := range Kinds {
		var list []Rule
		dl := defs.Of(k)
		if k == KindOverride && len(dl) > 0 && dl[0].RuleID == RuleMaster {
			list = append(list, applyOverride(dl[0], overrides))
			dl = dl[1:]
		}
		for _, u := range user {
			if u.Kind == k {
				list = append(list, u.Rule)
			}
		}
		for _, d := range dl {
			list = append(list, applyOverride(d, overrides))
		}
		if list == nil {
			list = []Rule{}
		}
		out.set(k, list)
	}
	return out
}

func applyOverride(r Rule, overrides map[string]Override) Rule {
	o, ok := overrides[r.RuleID]
	if !ok {
		return r
	}
	if o.Enabled != nil {
		r.Enabled = *o.Enabled
	}
	if o.Actions != nil {
		r.Actions = o.Actions
	}
	return r
}

// Validation errors: the handlers turn them into 400 M_INVALID_PARAM.
var (
	// ErrInvalidRule: the rule's body is not a valid rule of its kind.
	ErrInvalidRule = errors.New("invalid push rule")
)

// ValidateActions checks a list of actions: strings notify, dont_notify
// or coalesce, or set_tweak objects.
func ValidateActions(actions []json.RawMessage) error {
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			switch s {
			case "notify", "dont_notify", "coalesce":
				continue
			}
			return fmt.Errorf("%w: unknown action %q", ErrInvalidRule, s)
		}
		var t map[string]json.RawMessage
		if err := json.Unmarshal(a, &t); err != nil {
			return fmt.Errorf("%w: an action must be a string or an object", ErrInvalidRule)
		}
		name, ok := t["set_tweak"]
		if !ok || json.Unmarshal(name, &s) != nil || s == "" {
			return fmt.Errorf("%w: an object action must have a set_tweak string", ErrInvalidRule)
		}
	}
	return nil
}

// ValidateConditions checks the conditions of an override or underride
// rule: each has a kind and the fields that kind needs. Unknown kinds are
// allowed (the rule then never matches), as the spec says.
func ValidateConditions(conds []Condition) error {
	for _, c := range conds {
		switch c.Kind {
		case "":
			return fmt.Errorf("%w: a condition has no kind", ErrInvalidRule)
		case CondEventMatch:
			if c.Key == "" || c.Pattern == nil {
				return fmt.Errorf("%w: event_match needs key and pattern", ErrInvalidRule)
			}
		case CondEventPropertyIs, CondEventPropertyContains:
			if c.Key == "" || len(c.Value) == 0 {
				return fmt.Errorf("%w: %s needs key and value", ErrInvalidRule, c.Kind)
			}
			if _, ok := scalarOf(c.Value); !ok {
				return fmt.Errorf("%w: %s value must be a string, an integer, a boolean or null", ErrInvalidRule, c.Kind)
			}
		case CondRoomMemberCount:
			if _, _, ok := parseIs(c.Is); !ok {
				return fmt.Errorf("%w: room_member_count has a bad \"is\"", ErrInvalidRule)
			}
		case CondSenderNotificationPerms:
			if c.Key == "" {
				return fmt.Errorf("%w: sender_notification_permission needs key", ErrInvalidRule)
			}
		}
	}
	return nil
}
