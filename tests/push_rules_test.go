package tests

import (
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	mpush "maunium.net/go/mautrix/pushrules"
)

// rulePath is the path of a global push rule, or of one of its
// attributes.
func rulePath(kind, ruleID string, rest ...string) string {
	p := "/_matrix/client/v3/pushrules/global/" + kind + "/" + url.PathEscape(ruleID)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

func findRule(rules mpush.PushRuleArray, ruleID string) *mpush.PushRule {
	for _, r := range rules {
		if r.RuleID == ruleID {
			return r
		}
	}
	return nil
}

func pushRuleIDs(rules mpush.PushRuleArray) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.RuleID)
	}
	return out
}

// TestPushRulesCRUD reads the default rules with mautrix, adds, orders,
// changes and deletes user rules, changes the defaults' enabled flag and
// actions, and checks every refusal.
func TestPushRulesCRUD(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		tok := alice.AccessToken
		rules, err := alice.GetPushRules(ctx())
		if err != nil {
			t.Fatal(err)
		}
		wantOverride := []string{".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
			".m.rule.is_user_mention", ".m.rule.contains_display_name", ".m.rule.is_room_mention", ".m.rule.roomnotif",
			".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl", ".m.rule.suppress_edits"}
		wantUnderride := []string{".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"}
		if got := pushRuleIDs(rules.Override); !sameList(got, wantOverride) {
			t.Fatalf("override rules: %v", got)
		}
		if got := pushRuleIDs(rules.Underride); !sameList(got, wantUnderride) {
			t.Fatalf("underride rules: %v", got)
		}
		if len(rules.Content) != 1 || rules.Content[0].Pattern != "alice" {
			t.Fatalf("content rules: %+v", rules.Content)
		}
		whole := s.Do("GET", "/_matrix/client/v3/pushrules/", tok, nil).Expect(t, 200, "")
		if _, ok := whole.Body["global"].(map[string]any); !ok {
			t.Fatalf("GET /pushrules/: %s", whole.Raw)
		}

		notify := []any{"notify", map[string]any{"set_tweak": "sound", "value": "beeroclock.wav"}}
		beer := map[string]any{"conditions": []any{
			map[string]any{"kind": "event_match", "key": "content.body", "pattern": "beer"},
			map[string]any{"kind": "room_member_count", "is": "<=10"}}, "actions": notify}
		s.Do("PUT", rulePath("override", "beer"), tok, beer).Expect(t, 200, "")
		s.Do("PUT", rulePath("override", "wine")+"?before=beer", tok, beer).Expect(t, 200, "")
		s.Do("PUT", rulePath("override", "cider")+"?after=beer", tok, beer).Expect(t, 200, "")
		rules, _ = alice.GetPushRules(ctx())
		if got := pushRuleIDs(rules.Override); !sameList(got[:5], []string{".m.rule.master", "wine", "beer", "cider", ".m.rule.suppress_notices"}) {
			t.Fatalf("override order: %v", got)
		}
		got := s.Do("GET", rulePath("override", "beer"), tok, nil).Expect(t, 200, "").Body
		if got["rule_id"] != "beer" || got["default"] != false || got["enabled"] != true || len(got["conditions"].([]any)) != 2 {
			t.Fatalf("GET beer: %v", got)
		}
		s.Do("PUT", rulePath("content", "cake"), tok, map[string]any{"pattern": "cake*lie", "actions": []any{"notify"}}).Expect(t, 200, "")
		room := "!dj234r78wl45Gh4D:" + serverName
		s.Do("PUT", rulePath("room", room), tok, map[string]any{"actions": []any{}}).Expect(t, 200, "")
		if r := s.Do("GET", rulePath("room", room), tok, nil).Expect(t, 200, "").Body; r["rule_id"] != room {
			t.Fatalf("room rule: %v", r)
		}

		// enabled and actions, of a user rule and of a default rule.
		s.Do("PUT", rulePath("override", "beer", "enabled"), tok, map[string]any{"enabled": false}).Expect(t, 200, "")
		if r := s.Do("GET", rulePath("override", "beer", "enabled"), tok, nil).Expect(t, 200, "").Body; r["enabled"] != false {
			t.Fatalf("beer enabled: %v", r)
		}
		s.Do("PUT", rulePath("override", "beer", "actions"), tok, map[string]any{"actions": []any{"notify"}}).Expect(t, 200, "")
		if r := s.Do("GET", rulePath("override", "beer", "actions"), tok, nil).Expect(t, 200, "").Body; len(r["actions"].([]any)) != 1 {
			t.Fatalf("beer actions: %v", r)
		}
		if r := s.Do("GET", rulePath("override", "beer"), tok, nil).Body; len(r["conditions"].([]any)) != 2 || r["enabled"] != false {
			t.Fatalf("changing actions changed the rest: %v", r)
		}
		s.Do("PUT", rulePath("override", ".m.rule.master", "enabled"), tok, map[string]any{"enabled": true}).Expect(t, 200, "")
		s.Do("PUT", rulePath("underride", ".m.rule.message", "actions"), tok, map[string]any{"actions": []any{}}).Expect(t, 200, "")
		rules, _ = alice.GetPushRules(ctx())
		if !rules.Override[0].Enabled {
			t.Fatal("master rule not enabled")
		}
		msg := findRule(rules.Underride, ".m.rule.message")
		if msg == nil || len(msg.Actions) != 0 || !msg.Default {
			t.Fatalf(".m.rule.message: %+v", msg)
		}

		// Refusals.
		s.Do("PUT", rulePath("nosuchkind", "x"), tok, beer).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("GET", rulePath("override", "nope"), tok, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", rulePath("underride", "beer"), tok, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("PUT", rulePath("override", ".m.rule.message"), tok, beer).Expect(t, 400, "M_UNKNOWN")
		s.Do("PUT", rulePath("override", "x")+"?before=nope", tok, beer).Expect(t, 400, "M_UNKNOWN")
		s.Do("PUT", rulePath("override", "x")+"?after=.m.rule.master", tok, beer).Expect(t, 400, "M_UNKNOWN")
		s.Do("PUT", rulePath("content", "x"), tok, map[string]any{"actions": []any{"notify"}}).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("PUT", rulePath("override", "x"), tok, map[string]any{"conditions": []any{}}).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("PUT", rulePath("override", "x"), tok, map[string]any{"actions": []any{"shout"}}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("PUT", rulePath("override", "x"), tok, map[string]any{"actions": []any{}, "conditions": []any{map[string]any{"kind": "event_match", "key": "type"}}}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("PUT", rulePath("override", "x"), tok, map[string]any{"actions": "notify"}).Expect(t, 400, "M_BAD_JSON")
		s.Do("PUT", rulePath("override", "x"), tok, "{not json").Expect(t, 400, "M_NOT_JSON")
		s.Do("PUT", rulePath("override", "beer", "enabled"), tok, map[string]any{}).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("PUT", rulePath("override", "nope", "enabled"), tok, map[string]any{"enabled": true}).Expect(t, 404, "M_NOT_FOUND")
		s.Do("PUT", rulePath("override", "nope", "actions"), tok, map[string]any{"actions": []any{}}).Expect(t, 404, "M_NOT_FOUND")
		s.Do("DELETE", rulePath("underride", ".m.rule.message"), tok, nil).Expect(t, 400, "M_UNKNOWN")
		s.Do("DELETE", rulePath("underride", ".m.rule.nope"), tok, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", rulePath("override", "beer"), "", nil).Expect(t, 401, "M_MISSING_TOKEN")
		// Nothing refused changed anything.
		after, _ := alice.GetPushRules(ctx())
		if !sameList(pushRuleIDs(after.Override), pushRuleIDs(rules.Override)) {
			t.Fatalf("refused requests changed the rules: %v", pushRuleIDs(after.Override))
		}

		s.Do("DELETE", rulePath("override", "beer"), tok, nil).Expect(t, 200, "")
		s.Do("DELETE", rulePath("override", "beer"), tok, nil).Expect(t, 404, "M_NOT_FOUND")
		rules, _ = alice.GetPushRules(ctx())
		if findRule(rules.Override, "beer") != nil || findRule(rules.Override, "wine") == nil {
			t.Fatalf("after delete: %v", pushRuleIDs(rules.Override))
		}
		// Another user's rules are their own.
		bob := s.Register("bob")
		if bobRules, _ := bob.GetPushRules(ctx()); findRule(bobRules.Override, "wine") != nil || bobRules.Content[0].Pattern != "bob" {
			t.Fatal("bob sees alice's rules")
		}
	})
}

// notifications returns c's /notifications with the query.
func notifications(t testing.TB, s *Server, c *mautrix.Client, query string) Response {
	t.Helper()
	return s.Do("GET", "/_matrix/client/v3/notifications"+query, c.AccessToken, nil).Expect(t, 200, "")
}

// waitNotified waits until eventID is in c's /notifications and returns
// the entry.
func waitNotified(t testing.TB, s *Server, c *mautrix.Client, eventID id.EventID) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range notifications(t, s, c, "?limit=100").Body["notifications"].([]any) {
			entry := n.(map[string]any)
			if ev, _ := entry["event"].(map[string]any); ev["event_id"] == eventID.String() {
				return entry
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never notified %s", eventID, c.UserID)
	return nil
}

// TestPushRulesEvaluated sends events and finds what the rules made of
// them in /notifications: messages notify, mentions highlight, a room
// rule silences a room, the sender is never notified of its own events.
func TestPushRulesEvaluated(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		for _, c := range []*mautrix.Client{bob, carol} {
			if _, err := c.JoinRoomByID(ctx(), room); err != nil {
				t.Fatal(err)
			}
		}
		hello := sendText(t, bob, room, "hello all")
		entry := waitNotified(t, s, alice, hello)
		if entry["room_id"] != room.String() || entry["read"] != false {
			t.Fatalf("notification: %v", entry)
		}
		if ev := entry["event"].(map[string]any); ev["sender"] != bob.UserID.String() || ev["type"] != "m.room.message" {
			t.Fatalf("event of the notification: %v", ev)
		}
		mention, err := bob.SendMessageEvent(ctx(), room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "alice: look",
			"m.mentions": map[string]any{"user_ids": []string{alice.UserID.String()}}})
		if err != nil {
			t.Fatal(err)
		}
		waitNotified(t, s, alice, mention.EventID)
		highlights := notifications(t, s, alice, "?only=highlight").Body["notifications"].([]any)
		if len(highlights) != 1 || highlights[0].(map[string]any)["event"].(map[string]any)["event_id"] != mention.EventID.String() {
			t.Fatalf("highlights: %v", highlights)
		}
		// carol gets both, unhighlighted; bob none of his own.
		waitNotified(t, s, carol, mention.EventID)
		if n := notifications(t, s, carol, "?only=highlight").Body["notifications"].([]any); len(n) != 0 {
			t.Fatalf("carol highlighted: %v", n)
		}
		if n := notifications(t, s, bob, "").Body["notifications"].([]any); len(n) != 0 {
			t.Fatalf("bob notified of his own events: %v", n)
		}

		// Paging: newest first, next_token to the older ones.
		page := notifications(t, s, alice, "?limit=1").Body
		first := page["notifications"].([]any)[0].(map[string]any)["event"].(map[string]any)["event_id"]
		if first != mention.EventID.String() || page["next_token"] == nil {
			t.Fatalf("first page: %v", page)
		}
		page = notifications(t, s, alice, "?limit=1&from="+page["next_token"].(string)).Body
		if page["notifications"].([]any)[0].(map[string]any)["event"].(map[string]any)["event_id"] != hello.String() {
			t.Fatalf("second page: %v", page)
		}
		s.Do("GET", "/_matrix/client/v3/notifications?from=abc", alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("GET", "/_matrix/client/v3/notifications?only=everything", alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")

		// alice silences the room; carol still hears it.
		s.Do("PUT", rulePath("room", room.String()), alice.AccessToken, map[string]any{"actions": []any{}}).Expect(t, 200, "")
		quiet := sendText(t, bob, room, "hush")
		waitNotified(t, s, carol, quiet)
		for _, n := range notifications(t, s, alice, "?limit=100").Body["notifications"].([]any) {
			if n.(map[string]any)["event"].(map[string]any)["event_id"] == quiet.String() {
				t.Fatal("a silenced room notified")
			}
		}
		// A notice never notifies (.m.rule.suppress_notices); its absence is
		// checked once a later message got through.
		notice, err := bob.SendNotice(ctx(), room, "bot says")
		if err != nil {
			t.Fatal(err)
		}
		later := sendText(t, bob, room, "after the notice")
		waitNotified(t, s, carol, later)
		for _, n := range notifications(t, s, carol, "?limit=100").Body["notifications"].([]any) {
			if n.(map[string]any)["event"].(map[string]any)["event_id"] == notice.EventID.String() {
				t.Fatal("a notice notified")
			}
		}
	})
}
