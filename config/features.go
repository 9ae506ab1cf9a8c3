package config

import (
	"net/url"
	"strings"
	"time"
)

// UserDirectory sets who POST /user_directory/search finds.
type UserDirectory struct {
	// SearchAllUsers finds every local user, not only those who share a
	// room with the searcher or are in a public room: an organisation's
	// directory. Users who hide (im.vector.hide_profile) are never found.
	// Default: false.
	SearchAllUsers bool `yaml:"search_all_users"`
}

// Calls configures voice and video calls: TURN for Element's 1:1 calls,
// MatrixRTC transports for Element Call, and delayed events (MSC4140),
// which keep a call from hanging when a client vanishes.
type Calls struct {
	// TURNURIs are the TURN servers handed to clients by GET
	// /voip/turnServer, e.g. "turns:turn.example.org:5349?transport=tcp".
	// Empty (the default): the endpoint answers {} as Synapse does.
	TURNURIs []string `yaml:"turn_uris"`
	// TURNSharedSecret is coturn's static-auth-secret (use-auth-secret):
	// clients get credentials made from it that expire. Required with
	// turn_uris.
	TURNSharedSecret string `yaml:"turn_shared_secret"`
	// TURNUserLifetime is how long TURN credentials stay valid.
	// Default: "1h".
	TURNUserLifetime Duration `yaml:"turn_user_lifetime"`
	// RTCTransports are the MatrixRTC transports (LiveKit JWT services)
	// Element Call uses, advertised in /.well-known/matrix/client
	// (org.matrix.msc4143.rtc_foci) and by GET
	// /_matrix/client/unstable/org.matrix.msc4143/rtc/transports.
	// Default: none.
	RTCTransports []RTCTransport `yaml:"rtc_transports"`
	// MaxEventDelay is the longest delay of a delayed event (MSC4140).
	// Default: "24h". Delayed events cannot be turned off: Element Call
	// needs them.
	MaxEventDelay Duration `yaml:"max_event_delay"`
	// OpenIDTokenLifetime is how long an OpenID token (POST
	// /user/{userId}/openid/request_token, which Element Call hands to
	// its LiveKit JWT service) stays valid. Default: "1h".
	OpenIDTokenLifetime Duration `yaml:"openid_token_lifetime"`
}

// RTCTransport is one MatrixRTC transport.
type RTCTransport struct {
	// Type is the transport type. Only "livekit" is known.
	Type string `yaml:"type"`
	// LiveKitServiceURL is the URL of the LiveKit JWT service
	// (lk-jwt-service) for type livekit.
	LiveKitServiceURL string `yaml:"livekit_service_url"`
}

func (c *Calls) defaults() {
	if c.TURNUserLifetime == 0 {
		c.TURNUserLifetime = Duration(time.Hour)
	}
	if c.MaxEventDelay == 0 {
		c.MaxEventDelay = Duration(24 * time.Hour)
	}
	if c.OpenIDTokenLifetime == 0 {
		c.OpenIDTokenLifetime = Duration(time.Hour)
	}
	if len(c.TURNURIs) == 0 {
		c.TURNURIs = nil
	}
	if len(c.RTCTransports) == 0 {
		c.RTCTransports = nil
	}
}

func (c *Calls) verify(errs *Errors) {
	for _, u := range c.TURNURIs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") && !strings.HasPrefix(u, "stun:") {
			errs.Add("client.calls.turn_uris", "each entry must start with turn:, turns: or stun:")
		}
	}
	if len(c.TURNURIs) > 0 && c.TURNSharedSecret == "" {
		errs.Add("client.calls.turn_shared_secret", "is required with turn_uris")
	}
	if c.TURNUserLifetime < 0 || c.MaxEventDelay < 0 || c.OpenIDTokenLifetime < 0 {
		errs.Add("client.calls", "durations must be positive")
	}
	for _, t := range c.RTCTransports {
		if t.Type != "livekit" {
			errs.Add("client.calls.rtc_transports", "type must be livekit")
			continue
		}
		if u, err := url.Parse(t.LiveKitServiceURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs.Add("client.calls.rtc_transports", "livekit_service_url must be an http(s) URL")
		}
	}
}
