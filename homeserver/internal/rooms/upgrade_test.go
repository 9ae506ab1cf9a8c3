package rooms

import (
	"encoding/json"
	"testing"

	"github.com/matrix-gouv/homeserver/config"
)

func TestSplitCanonicalAlias(t *testing.T) {
	h := &Handlers{global: &config.Global{ServerName: "here.example"}}
	for _, c := range []struct {
		content, local, rest string
	}{
		{`{"alias": "#a:here.example"}`, `{"alias":"#a:here.example"}`, `{}`},
		{`{"alias": "#a:there.example"}`, ``, `{"alias": "#a:there.example"}`},
		{`{"alias": "#a:here.example", "alt_aliases": ["#b:here.example", "#c:there.example"]}`,
			`{"alias":"#a:here.example","alt_aliases":["#b:here.example"]}`, `{"alt_aliases":["#c:there.example"]}`},
		{`{"alt_aliases": ["#b:here.example"], "extra": 1}`, `{"alt_aliases":["#b:here.example"]}`, `{"extra":1}`},
		{`{}`, ``, `{}`},
		{`nonsense`, ``, `nonsense`},
	} {
		local, rest := h.splitCanonicalAlias(json.RawMessage(c.content))
		if string(local) != c.local || string(rest) != c.rest {
			t.Errorf("%s: local %s rest %s, want %s and %s", c.content, local, rest, c.local, c.rest)
		}
	}
}

func TestRestrictedRule(t *testing.T) {
	for _, c := range []struct {
		version, rule string
		want          bool
	}{
		{"7", joinRuleRestricted, false},
		{"8", joinRuleRestricted, true},
		{"9", joinRuleKnockRestricted, false},
		{"10", joinRuleKnockRestricted, true},
		{"12", joinRuleRestricted, true},
		{"12", joinRuleKnock, false},
		{"12", joinRulePublic, false},
		{"nonsense", joinRuleRestricted, false},
	} {
		if got := restrictedRule(c.version, c.rule); got != c.want {
			t.Errorf("v%s %s: %v, want %v", c.version, c.rule, got, c.want)
		}
	}
}
