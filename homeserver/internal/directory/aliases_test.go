package directory

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseAlias(t *testing.T) {
	for _, c := range []struct {
		alias, server string
	}{
		{"#room:test.local", "test.local"},
		{"#room:test.local:8448", "test.local:8448"},
		{"#r:o:om:test.local", ""}, // the localpart ends at the first ':'
		{"#ünï cödé:test.local", "test.local"},
		{"#room:[::1]:8448", "[::1]:8448"},
		{"room:test.local", ""},
		{"#:test.local", ""},
		{"#room", ""},
		{"#room:", ""},
		{"#ro\x00om:test.local", ""},
		{"%invalid_aliases", ""},
		{"#" + strings.Repeat("a", 250) + ":test.local", ""},
	} {
		server, err := parseAlias(c.alias)
		if c.server == "" && err == nil {
			t.Errorf("%q: accepted (server %q), want refused", c.alias, server)
		}
		if c.server != "" && (err != nil || string(server) != c.server) {
			t.Errorf("%q: %q %v, want %q", c.alias, server, err, c.server)
		}
	}
}

func TestCanonicalAliases(t *testing.T) {
	for _, c := range []struct {
		content string
		want    []string
		bad     bool
	}{
		{``, nil, false},
		{`{}`, nil, false},
		{`{"alias": ""}`, nil, false},
		{`{"alias": "#a:x", "alt_aliases": ["#b:x", "#c:x"]}`, []string{"#a:x", "#b:x", "#c:x"}, false},
		{`{"alt_aliases": ["#b:x"]}`, []string{"#b:x"}, false},
		{`{"alias": 3}`, nil, true},
		{`{"alt_aliases": "#b:x"}`, nil, true},
		{`{"alt_aliases": [1]}`, nil, true},
	} {
		got, err := canonicalAliases(json.RawMessage(c.content))
		if (err != nil) != c.bad || !c.bad && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v %v, want %v (bad %v)", c.content, got, err, c.want, c.bad)
		}
	}
}
