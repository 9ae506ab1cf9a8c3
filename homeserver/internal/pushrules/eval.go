package pushrules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Event is an event parsed once for evaluation against every member's
// rules. It is read-only once made, so one Event may be evaluated from
// several goroutines.
type Event struct {
	fields map[string]any
	// body is content.body when it is a string, and bodyLower its lower
	// case, for the word searches of content rules and display names.
	body, bodyLower string
	hasBody         bool
	// hasMentions says content has an m.mentions property, which turns
	// the deprecated mention rules off (spec v1.7).
	hasMentions bool
}

// ParseEvent parses an event's JSON (a PDU or a client event).
func ParseEvent(raw json.RawMessage) (*Event, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("parse event for push rules: %w", err)
	}
	e := &Event{fields: m}
	if content, ok := m["content"].(map[string]any); ok {
		if b, ok := content["body"].(string); ok {
			e.body, e.bodyLower, e.hasBody = b, strings.ToLower(b), true
		}
		_, e.hasMentions = content["m.mentions"]
	}
	return e, nil
}

// lookup walks a parsed dotted path; ok is false when a segment is
// missing or the value under it is not an object.
func (e *Event) lookup(path []string) (any, bool) {
	var cur any = e.fields
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[seg]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// splitKey splits a dotted key into its segments with the spec's escapes:
// "\." is a literal dot and "\\" a literal backslash; any other
// backslash is itself.
func splitKey(key string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '\\' && i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\'):
			cur.WriteByte(key[i+1])
			i++
		case c == '.':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}

// RoomContext is what conditions need to know of the room and of the
// user whose rules are evaluated, at the event.
type RoomContext struct {
	// MemberCount is the number of joined members.
	MemberCount int
	// DisplayName is the user's display name in the room ("" for none).
	DisplayName string
	// SenderPower is the event sender's power level.
	SenderPower int64
	// NotificationLevels are the power levels' "notifications" levels;
	// a key not there ("room" included) needs 50.
	NotificationLevels map[string]int64
}

// Outcome is what the first matching rule's actions say.
type Outcome struct {
	// RuleID is the rule that matched.
	RuleID string
	// Notify: the event counts as a notification.
	Notify bool
	// Highlight: the set_tweak highlight (its value true or absent).
	Highlight bool
	// Actions are the rule's actions as written, for /notifications and
	// push gateways' tweaks.
	Actions []json.RawMessage
}

// Tweaks returns the set_tweak values of o's actions (highlight as a
// boolean), for push gateway payloads.
func (o Outcome) Tweaks() map[string]any {
	t := map[string]any{}
	for _, a := range o.Actions {
		var obj map[string]any
		if json.Unmarshal(a, &obj) != nil {
			continue
		}
		name, _ := obj["set_tweak"].(string)
		if name == "" {
			continue
		}
		v, ok := obj["value"]
		if !ok && name == "highlight" {
			v = true
		}
		t[name] = v
	}
	return t
}

// Set is a user's ruleset compiled for evaluation: enabled rules only, in
// evaluation order, globs compiled. It is immutable and safe to share.
type Set struct {
	rules []compiled
}

type compiled struct {
	id      string
	conds   []matcher
	legacy  bool
	outcome Outcome
}

// matcher is one compiled condition.
type matcher func(e *Event, rc *RoomContext) bool

// Compile compiles rs for evaluation. A rule that cannot match (a
// condition of a kind this server does not know) is left out.
func Compile(rs Ruleset) *Set {
	s := &Set{}
	for _, k := range Kinds {
		for _, r := range rs.Of(k) {
			if !r.Enabled {
				continue
			}
			c := compiled{id: r.RuleID, legacy: legacyMentionRules[r.RuleID] && r.Default}
			c.outcome = outcomeOf(r)
			ok := true
			switch k {
			case KindOverride, KindUnderride:
				for _, cond := range r.Conditions {
					m, known := compileCondition(cond)
					if !known {
						ok = false
						break
					}
					c.conds = append(c.conds, m)
				}
			case KindContent:
				if r.Pattern == nil {
					ok = false
					break
				}
				c.conds = []matcher{bodyMatcher(*r.Pattern)}
			case KindRoom:
				c.conds = []matcher{exactField([]string{"room_id"}, r.RuleID)}
			case KindSender:
				c.conds = []matcher{exactField([]string{"sender"}, r.RuleID)}
			}
			if ok {
				s.rules = append(s.rules, c)
			}
		}
	}
	return s
}

// Evaluate returns the outcome of the first rule of s that matches e;
// matched is false when none does (no notification).
func (s *Set) Evaluate(e *Event, rc *RoomContext) (o Outcome, matched bool) {
	for i := range s.rules {
		r := &s.rules[i]
		if r.legacy && e.hasMentions {
			continue
		}
		all := true
		for _, m := range r.conds {
			if !m(e, rc) {
				all = false
				break
			}
		}
		if all {
			return r.outcome, true
		}
	}
	return Outcome{}, false
}

func outcomeOf(r Rule) Outcome {
	o := Outcome{RuleID: r.RuleID, Actions: r.Actions}
	for _, a := range r.Actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			if s == "notify" {
				o.Notify = true
			}
			continue
		}
		var t struct {
			SetTweak string          `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal(a, &t) == nil && t.SetTweak == "highlight" {
			o.Highlight = len(t.Value) == 0 || string(t.Value) == "true"
		}
	}
	return o
}

// compileCondition compiles c; known is false for a kind this server does
// not know, which makes its rule never match.
func compileCondition(c Condition) (m matcher, known bool) {
	switch c.Kind {
	case CondEventMatch:
		if c.Pattern == nil {
			return never, true
		}
		path := splitKey(c.Key)
		if c.Key == "content.body" {
			return bodyMatcher(*c.Pattern), true
		}
		g := compileGlob(*c.Pattern)
		return func(e *Event, _ *RoomContext) bool {
			v, ok := e.lookup(path)
			if !ok {
				return false
			}
			s, ok := v.(string)
			return ok && g.match(s)
		}, true
	case CondEventPropertyIs:
		want, ok := scalarOf(c.Value)
		if !ok {
			return never, true
		}
		path := splitKey(c.Key)
		return func(e *Event, _ *RoomContext) bool {
			v, ok := e.lookup(path)
			if !ok {
				return false
			}
			got, ok := scalarOfAny(v)
			return ok && got == want
		}, true
	case CondEventPropertyContains:
		want, ok := scalarOf(c.Value)
		if !ok {
			return never, true
		}
		path := splitKey(c.Key)
		return func(e *Event, _ *RoomContext) bool {
			v, ok := e.lookup(path)
			if !ok {
				return false
			}
			list, ok := v.([]any)
			if !ok {
				return false
			}
			for _, item := range list {
				if got, ok := scalarOfAny(item); ok && got == want {
					return true
				}
			}
			return false
		}, true
	case CondContainsDisplayName:
		return func(e *Event, rc *RoomContext) bool {
			if !e.hasBody || rc.DisplayName == "" {
				return false
			}
			return containsWord(e.bodyLower, strings.ToLower(rc.DisplayName))
		}, true
	case CondRoomMemberCount:
		op, n, ok := parseIs(c.Is)
		if !ok {
			return never, true
		}
		return func(_ *Event, rc *RoomContext) bool {
			return compareCount(rc.MemberCount, op, n)
		}, true
	case CondSenderNotificationPerms:
		key := c.Key
		return func(_ *Event, rc *RoomContext) bool {
			need, ok := rc.NotificationLevels[key]
			if !ok {
				need = 50
			}
			return rc.SenderPower >= need
		}, true
	}
	return nil, false
}

func never(*Event, *RoomContext) bool { return false }

// exactField matches a string field equal to want (room and sender rules).
func exactField(path []string, want string) matcher {
	return func(e *Event, _ *RoomContext) bool {
		v, ok := e.lookup(path)
		s, isStr := v.(string)
		return ok && isStr && s == want
	}
}

// bodyMatcher matches content.body against pattern: the glob must match
// a run of the body that starts and ends at word boundaries, ignoring
// case (spec: event_match on content.body, and content rules).
func bodyMatcher(pattern string) matcher {
	lower := strings.ToLower(pattern)
	if !strings.ContainsAny(pattern, "*?") {
		return func(e *Event, _ *RoomContext) bool {
			return e.hasBody && containsWord(e.bodyLower, lower)
		}
	}
	re := regexp.MustCompile(`(?is)(?:^|[^0-9a-z_])` + globRegexp(pattern) + `(?:$|[^0-9a-z_])`)
	return func(e *Event, _ *RoomContext) bool {
		return e.hasBody && re.MatchString(e.body)
	}
}

// glob is an event_match pattern matched against a whole value, ignoring
// case.
type glob struct {
	exact string
	re    *regexp.Regexp
}

func compileGlob(pattern string) glob {
	if !strings.ContainsAny(pattern, "*?") {
		return glob{exact: pattern}
	}
	return glob{re: regexp.MustCompile(`(?is)^` + globRegexp(pattern) + `$`)}
}

func (g glob) match(s string) bool {
	if g.re == nil {
		return strings.EqualFold(s, g.exact)
	}
	return g.re.MatchString(s)
}

// globRegexp turns a glob (* any run, ? one character) into a regexp.
func globRegexp(pattern string) string {
	var b strings.Builder
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*?")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}

// isWordByte reports whether c is a word character of the spec's word
// boundaries: [A-Za-z0-9_] (bytes of multi-byte characters are not).
func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// containsWord reports whether word occurs in s between word boundaries;
// both are already lower case.
func containsWord(s, word string) bool {
	if word == "" {
		return false
	}
	for from := 0; from <= len(s)-len(word); {
		i := strings.Index(s[from:], word)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(word)
		startOK := i == 0 || !isWordByte(s[i-1]) || !isWordByte(word[0])
		endOK := end == len(s) || !isWordByte(s[end]) || !isWordByte(word[len(word)-1])
		if startOK && endOK {
			return true
		}
		from = i + 1
	}
	return false
}

// scalar is a JSON value event_property_is compares: a string, an
// integer, a boolean or null.
type scalar struct {
	kind byte // 's', 'i', 'b', 'n'
	s    string
	i    int64
	b    bool
}

func scalarOf(raw json.RawMessage) (scalar, bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return scalar{}, false
	}
	return scalarOfAny(v)
}

func scalarOfAny(v any) (scalar, bool) {
	switch x := v.(type) {
	case nil:
		return scalar{kind: 'n'}, true
	case string:
		return scalar{kind: 's', s: x}, true
	case bool:
		return scalar{kind: 'b', b: x}, true
	case json.Number:
		i, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return scalar{}, false
		}
		return scalar{kind: 'i', i: i}, true
	}
	return scalar{}, false
}

// parseIs parses room_member_count's "is": an optional ==, <, >, <= or >=
// and a non-negative integer.
func parseIs(is string) (op string, n int, ok bool) {
	for _, p := range []string{"==", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(is, p) {
			op, is = p, is[len(p):]
			break
		}
	}
	if op == "" {
		op = "=="
	}
	n, err := strconv.Atoi(is)
	if err != nil || n < 0 || is == "" || is[0] == '+' {
		return "", 0, false
	}
	return op, n, true
}

func compareCount(count int, op string, n int) bool {
	switch op {
	case "<":
		return count < n
	case ">":
		return count > n
	case "<=":
		return count <= n
	case ">=":
		return count >= n
	}
	return count == n
}
