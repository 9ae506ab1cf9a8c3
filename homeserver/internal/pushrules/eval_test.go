package pushrules

import (
	"encoding/json"
	"reflect"
	"testing"
)

const me = "@alice:example.org"

func TestSplitKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"content.body", []string{"content", "body"}},
		{`content.m\.relates_to.rel_type`, []string{"content", "m.relates_to", "rel_type"}},
		{`content.m\\foo`, []string{"content", `m\foo`}},
		{`content.m\x`, []string{"content", `m\x`}},
		{`content.m\\.foo`, []string{"content", `m\`, "foo"}},
	} {
		if got := splitKey(tc.key); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitKey(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestConditions(t *testing.T) {
	pattern := func(s string) *string { return &s }
	// The spec's examples of dotted keys and property conditions.
	ev := `{"type":"m.room.message","sender":"@bob:example.org","room_id":"!r:example.org","state_key":"",
		"content":{"body":"Hello cake lovers! @room","msgtype":"m.text","m.relates_to":{"rel_type":"m.replace"},
		"m.mentions":{"user_ids":["@alice:example.org"],"room":true},"count":3,"flag":false,"nothing":null,
		"m.foo\\bar":"x","m.foo":{"bar":"nested"}}}`
	rc := &RoomContext{MemberCount: 2, DisplayName: "Alice", SenderPower: 50}
	for _, tc := range []struct {
		name string
		cond Condition
		want bool
	}{
		{"type glob exact", Condition{Kind: CondEventMatch, Key: "type", Pattern: pattern("m.room.message")}, true},
		{"type glob case", Condition{Kind: CondEventMatch, Key: "type", Pattern: pattern("M.ROOM.MESSAGE")}, true},
		{"type glob star", Condition{Kind: CondEventMatch, Key: "type", Pattern: pattern("m.room.*")}, true},
		{"type glob question", Condition{Kind: CondEventMatch, Key: "type", Pattern: pattern("m.room.messag?")}, true},
		{"type glob no partial", Condition{Kind: CondEventMatch, Key: "type", Pattern: pattern("m.room")}, false},
		{"body word", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: pattern("cake")}, true},
		{"body word case", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: pattern("CAKE")}, true},
		{"body not inside a word", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: pattern("ake")}, false},
		{"body glob", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: pattern("cake*s")}, true},
		{"body @room", Condition{Kind: CondEventMatch, Key: "content.body", Pattern: pattern("@room")}, true},
		{"missing key never matches, even *", Condition{Kind: CondEventMatch, Key: "content.nope", Pattern: pattern("*")}, false},
		{"non-string never matches", Condition{Kind: CondEventMatch, Key: "content.count", Pattern: pattern("*")}, false},
		{"empty state key", Condition{Kind: CondEventMatch, Key: "state_key", Pattern: pattern("")}, true},
		{"escaped dot", Condition{Kind: CondEventPropertyIs, Key: `content.m\.relates_to.rel_type`, Value: json.RawMessage(`"m.replace"`)}, true},
		{"unescaped dot walks", Condition{Kind: CondEventMatch, Key: "content.m.foo.bar", Pattern: pattern("nested")}, false},
		{"nested", Condition{Kind: CondEventMatch, Key: "content.m\\.foo.bar", Pattern: pattern("nested")}, true},
		{"escaped backslash", Condition{Kind: CondEventMatch, Key: `content.m\.foo\\bar`, Pattern: pattern("x")}, true},
		{"is bool", Condition{Kind: CondEventPropertyIs, Key: `content.m\.mentions.room`, Value: json.RawMessage(`true`)}, true},
		{"is bool false", Condition{Kind: CondEventPropertyIs, Key: "content.flag", Value: json.RawMessage(`false`)}, true},
		{"is int", Condition{Kind: CondEventPropertyIs, Key: "content.count", Value: json.RawMessage(`3`)}, true},
		{"is int not string", Condition{Kind: CondEventPropertyIs, Key: "content.count", Value: json.RawMessage(`"3"`)}, false},
		{"is null", Condition{Kind: CondEventPropertyIs, Key: "content.nothing", Value: json.RawMessage(`null`)}, true},
		{"is null absent", Condition{Kind: CondEventPropertyIs, Key: "content.absent", Value: json.RawMessage(`null`)}, false},
		{"is string exact case", Condition{Kind: CondEventPropertyIs, Key: "content.msgtype", Value: json.RawMessage(`"M.TEXT"`)}, false},
		{"contains", Condition{Kind: CondEventPropertyContains, Key: `content.m\.mentions.user_ids`, Value: json.RawMessage(`"@alice:example.org"`)}, true},
		{"contains not", Condition{Kind: CondEventPropertyContains, Key: `content.m\.mentions.user_ids`, Value: json.RawMessage(`"@bob:example.org"`)}, false},
		{"contains not a list", Condition{Kind: CondEventPropertyContains, Key: "content.body", Value: json.RawMessage(`"cake"`)}, false},
		{"member count", Condition{Kind: CondRoomMemberCount, Is: "2"}, true},
		{"member count ==", Condition{Kind: CondRoomMemberCount, Is: "==3"}, false},
		{"member count <=", Condition{Kind: CondRoomMemberCount, Is: "<=10"}, true},
		{"member count >", Condition{Kind: CondRoomMemberCount, Is: ">2"}, false},
		{"member count bad", Condition{Kind: CondRoomMemberCount, Is: "two"}, false},
		{"sender permission default 50", Condition{Kind: CondSenderNotificationPerms, Key: "room"}, true},
		{"display name", Condition{Kind: CondContainsDisplayName}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseEvent(json.RawMessage(ev))
			if err != nil {
				t.Fatal(err)
			}
			m, known := compileCondition(tc.cond)
			if !known {
				t.Fatal("unknown condition")
			}
			if got := m(e, rc); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestContainsWord(t *testing.T) {
	for _, tc := range []struct {
		s, w string
		want bool
	}{
		{"hello alice!", "alice", true},
		{"alice", "alice", true},
		{"malice", "alice", false},
		{"alice_b", "alice", false},
		{"malice and alice", "alice", true},
		{"hi @alice:", "@alice:", true},
		{"", "alice", false},
		{"alice", "", false},
	} {
		if got := containsWord(tc.s, tc.w); got != tc.want {
			t.Errorf("containsWord(%q, %q) = %v", tc.s, tc.w, got)
		}
	}
}

// TestDefaults evaluates the default rules on the events they are
// written for.
func TestDefaults(t *testing.T) {
	set := Compile(Build(me, nil, nil))
	one2one := &RoomContext{MemberCount: 2, DisplayName: "Alice Liddell", SenderPower: 0}
	group := &RoomContext{MemberCount: 10, DisplayName: "Alice Liddell", SenderPower: 0}
	mod := &RoomContext{MemberCount: 10, SenderPower: 100}
	for _, tc := range []struct {
		name            string
		event           string
		rc              *RoomContext
		rule            string // "" for no match
		notify, highlit bool
	}{
		{"message 1:1", `{"type":"m.room.message","content":{"body":"hi","msgtype":"m.text"}}`, one2one, ".m.rule.room_one_to_one", true, false},
		{"message group", `{"type":"m.room.message","content":{"body":"hi","msgtype":"m.text"}}`, group, ".m.rule.message", true, false},
		{"encrypted 1:1", `{"type":"m.room.encrypted","content":{"ciphertext":"x"}}`, one2one, ".m.rule.encrypted_room_one_to_one", true, false},
		{"encrypted group", `{"type":"m.room.encrypted","content":{"ciphertext":"x"}}`, group, ".m.rule.encrypted", true, false},
		{"notice", `{"type":"m.room.message","content":{"body":"bot","msgtype":"m.notice"}}`, group, ".m.rule.suppress_notices", false, false},
		{"invite for me", `{"type":"m.room.member","state_key":"@alice:example.org","content":{"membership":"invite"}}`, group, ".m.rule.invite_for_me", true, false},
		{"invite for another", `{"type":"m.room.member","state_key":"@carol:example.org","content":{"membership":"invite"}}`, group, ".m.rule.member_event", false, false},
		{"user mention", `{"type":"m.room.message","content":{"body":"hey","m.mentions":{"user_ids":["@alice:example.org"]}}}`, group, ".m.rule.is_user_mention", true, true},
		{"display name without m.mentions", `{"type":"m.room.message","content":{"body":"hey Alice Liddell!"}}`, group, ".m.rule.contains_display_name", true, true},
		{"display name with m.mentions", `{"type":"m.room.message","content":{"body":"hey Alice Liddell!","m.mentions":{}}}`, group, ".m.rule.message", true, false},
		{"user name", `{"type":"m.room.message","content":{"body":"ping alice"}}`, group, ".m.rule.contains_user_name", true, true},
		{"room mention by moderator", `{"type":"m.room.message","content":{"body":"all","m.mentions":{"room":true}}}`, mod, ".m.rule.is_room_mention", true, true},
		{"room mention by nobody", `{"type":"m.room.message","content":{"body":"all","m.mentions":{"room":true}}}`, group, ".m.rule.message", true, false},
		{"@room legacy", `{"type":"m.room.message","content":{"body":"@room look"}}`, mod, ".m.rule.roomnotif", true, true},
		{"tombstone", `{"type":"m.room.tombstone","state_key":"","content":{"body":"moved"}}`, group, ".m.rule.tombstone", true, true},
		{"reaction", `{"type":"m.reaction","content":{"m.relates_to":{"rel_type":"m.annotation","key":"👍"}}}`, one2one, ".m.rule.reaction", false, false},
		{"server acl", `{"type":"m.room.server_acl","state_key":"","content":{}}`, group, ".m.rule.room.server_acl", false, false},
		{"edit", `{"type":"m.room.message","content":{"body":"* alice","m.relates_to":{"rel_type":"m.replace"}}}`, group, ".m.rule.suppress_edits", false, false},
		{"call", `{"type":"m.call.invite","content":{}}`, group, ".m.rule.call", true, false},
		{"other state", `{"type":"m.room.topic","state_key":"","content":{"topic":"x"}}`, group, "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseEvent(json.RawMessage(tc.event))
			if err != nil {
				t.Fatal(err)
			}
			o, matched := set.Evaluate(e, tc.rc)
			if tc.rule == "" {
				if matched {
					t.Fatalf("matched %s", o.RuleID)
				}
				return
			}
			if o.RuleID != tc.rule || o.Notify != tc.notify || o.Highlight != tc.highlit {
				t.Fatalf("got %s notify=%v highlight=%v, want %s %v %v", o.RuleID, o.Notify, o.Highlight, tc.rule, tc.notify, tc.highlit)
			}
		})
	}
}

// TestUserRules checks the order: master first, then user rules before
// the defaults of their kind, and overrides of the defaults.
func TestUserRules(t *testing.T) {
	room := "!quiet:example.org"
	user := []UserRule{
		{Kind: KindRoom, Rule: Rule{RuleID: room, Enabled: true, Actions: []json.RawMessage{}}},
		{Kind: KindContent, Rule: Rule{RuleID: "cake", Enabled: true, Pattern: ptr("cake*lie"), Actions: []json.RawMessage{json.RawMessage(`"notify"`), json.RawMessage(`{"set_tweak":"sound","value":"cakealarm.wav"}`)}}},
		{Kind: KindOverride, Rule: Rule{RuleID: "beer", Enabled: true, Conditions: []Condition{
			{Kind: CondEventMatch, Key: "content.body", Pattern: ptr("beer")}, {Kind: CondRoomMemberCount, Is: "<=10"}},
			Actions: []json.RawMessage{json.RawMessage(`"notify"`), json.RawMessage(`{"set_tweak":"highlight","value":false}`)}}},
		{Kind: KindOverride, Rule: Rule{RuleID: "future", Enabled: true, Conditions: []Condition{{Kind: "org.example.unknown"}},
			Actions: []json.RawMessage{json.RawMessage(`"notify"`)}}},
	}
	off := false
	rs := Build(me, user, map[string]Override{".m.rule.message": {Enabled: &off}})
	if rs.Override[0].RuleID != RuleMaster || rs.Override[1].RuleID != "beer" || rs.Content[0].RuleID != "cake" {
		t.Fatalf("order: %s %s %s", rs.Override[0].RuleID, rs.Override[1].RuleID, rs.Content[0].RuleID)
	}
	set := Compile(rs)
	rc := &RoomContext{MemberCount: 5}
	eval := func(ev string) Outcome {
		e, err := ParseEvent(json.RawMessage(ev))
		if err != nil {
			t.Fatal(err)
		}
		o, _ := set.Evaluate(e, rc)
		return o
	}
	if o := eval(`{"type":"m.room.message","room_id":"!quiet:example.org","content":{"body":"hi"}}`); o.RuleID != room || o.Notify {
		t.Fatalf("room rule: %+v", o)
	}
	if o := eval(`{"type":"m.room.message","room_id":"!r:example.org","content":{"body":"the cake is a lie"}}`); o.RuleID != "cake" || !o.Notify || o.Tweaks()["sound"] != "cakealarm.wav" {
		t.Fatalf("content rule: %+v", o)
	}
	if o := eval(`{"type":"m.room.message","room_id":"!r:example.org","content":{"body":"beer time"}}`); o.RuleID != "beer" || o.Highlight {
		t.Fatalf("override rule: %+v", o)
	}
	if o := eval(`{"type":"m.room.message","room_id":"!r:example.org","content":{"body":"hi"}}`); o.RuleID != "" {
		t.Fatalf(".m.rule.message is disabled, got %+v", o)
	}
	on := true
	master := Compile(Build(me, user, map[string]Override{RuleMaster: {Enabled: &on}}))
	e, _ := ParseEvent(json.RawMessage(`{"type":"m.room.message","content":{"body":"beer"}}`))
	if o, _ := master.Evaluate(e, rc); o.RuleID != RuleMaster || o.Notify {
		t.Fatalf("master: %+v", o)
	}
}

func TestRuleJSON(t *testing.T) {
	rs := Defaults(me)
	b, err := json.Marshal(rs.Override[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"rule_id":".m.rule.master","default":true,"enabled":false,"actions":[],"conditions":[]}` {
		t.Fatalf("master: %s", b)
	}
	b, _ = json.Marshal(rs.Content[0])
	var back Rule
	if err := json.Unmarshal(b, &back); err != nil || back.Conditions != nil || *back.Pattern != "alice" {
		t.Fatalf("content rule round trip: %s %+v %v", b, back, err)
	}
}

func TestValidate(t *testing.T) {
	raw := func(s ...string) []json.RawMessage {
		out := make([]json.RawMessage, len(s))
		for i, x := range s {
			out[i] = json.RawMessage(x)
		}
		return out
	}
	if err := ValidateActions(raw(`"notify"`, `{"set_tweak":"sound","value":"x"}`, `"dont_notify"`)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]json.RawMessage{raw(`"shout"`), raw(`{"value":1}`), raw(`3`)} {
		if ValidateActions(bad) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if ValidateConditions([]Condition{{Kind: CondEventMatch, Key: "type"}}) == nil {
		t.Error("event_match without pattern accepted")
	}
	if ValidateConditions([]Condition{{Kind: CondRoomMemberCount, Is: "<x"}}) == nil {
		t.Error("bad is accepted")
	}
	if ValidateConditions([]Condition{{Kind: CondEventPropertyIs, Key: "k", Value: json.RawMessage(`1.5`)}}) == nil {
		t.Error("float value accepted")
	}
	if err := ValidateConditions([]Condition{{Kind: "org.example.new"}}); err != nil {
		t.Errorf("unknown kind refused: %v", err)
	}
}

func ptr(s string) *string { return &s }

func BenchmarkEvaluateDefaults(b *testing.B) {
	set := Compile(Build(me, nil, nil))
	e, _ := ParseEvent(json.RawMessage(`{"type":"m.room.message","sender":"@bob:example.org","room_id":"!r:example.org",
		"content":{"body":"hello there, how are you today?","msgtype":"m.text","m.mentions":{}}}`))
	rc := &RoomContext{MemberCount: 10, DisplayName: "Alice"}
	b.ReportAllocs()
	for b.Loop() {
		set.Evaluate(e, rc)
	}
}
