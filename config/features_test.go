package config

import (
	"strings"
	"testing"
	"time"
)

func TestCallsDefaultsAndVerify(t *testing.T) {
	var c Calls
	c.defaults()
	var errs Errors
	c.verify(&errs)
	if len(errs) != 0 || c.TURNUserLifetime.Std() != time.Hour || c.MaxEventDelay.Std() != 24*time.Hour ||
		c.OpenIDTokenLifetime.Std() != time.Hour || c.TURNURIs != nil || c.RTCTransports != nil {
		t.Fatalf("defaults %+v, problems %v", c, errs)
	}
	tests := []struct {
		name   string
		change func(c *Calls)
		key    string // "" when valid
	}{
		{"turn", func(c *Calls) { c.TURNURIs, c.TURNSharedSecret = []string{"turns:turn.example.org:5349"}, "s" }, ""},
		{"turn without secret", func(c *Calls) { c.TURNURIs = []string{"turn:turn.example.org"} }, "client.calls.turn_shared_secret"},
		{"bad turn uri", func(c *Calls) { c.TURNURIs, c.TURNSharedSecret = []string{"https://turn"}, "s" }, "client.calls.turn_uris"},
		{"livekit", func(c *Calls) { c.RTCTransports = []RTCTransport{{"livekit", "https://rtc.example.org"}} }, ""},
		{"bad type", func(c *Calls) { c.RTCTransports = []RTCTransport{{"mesh", "https://rtc.example.org"}} }, "client.calls.rtc_transports"},
		{"bad url", func(c *Calls) { c.RTCTransports = []RTCTransport{{"livekit", "rtc.example.org"}} }, "client.calls.rtc_transports"},
		{"negative", func(c *Calls) { c.MaxEventDelay = -1 }, "client.calls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Calls
			tt.change(&c)
			c.defaults()
			var errs Errors
			c.verify(&errs)
			if tt.key == "" {
				if len(errs) != 0 {
					t.Fatalf("unexpected problems: %v", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0], tt.key+":") {
				t.Fatalf("problems %v, want one for %s", errs, tt.key)
			}
		})
	}
}
