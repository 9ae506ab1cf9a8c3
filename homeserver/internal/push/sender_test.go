package push

import (
	"errors"
	"testing"

	"github.com/matrix-gouv/homeserver/config"
)

func TestCheckGatewayURL(t *testing.T) {
	cfg := &config.Push{GatewayDeny: []string{"denied.example"}}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://push.example.org/_matrix/push/v1/notify", true},
		{"https://push.example.org:8443/_matrix/push/v1/notify", true},
		{"http://push.example.org/_matrix/push/v1/notify", false},
		{"https://push.example.org/_matrix/push/v1/notify/", false},
		{"https://push.example.org/other", false},
		{"https://user:pw@push.example.org/_matrix/push/v1/notify", false},
		{"https:///_matrix/push/v1/notify", false},
		{"https://denied.example/_matrix/push/v1/notify", false},
		{"not a url", false},
	} {
		if err := checkGatewayURL(cfg, tc.url); (err == nil) != tc.ok {
			t.Errorf("checkGatewayURL(%q) = %v", tc.url, err)
		}
	}
}

func TestPrivateAddressRefused(t *testing.T) {
	client, err := gatewayClient(&config.Push{Timeout: config.Duration(1e9)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Post("https://127.0.0.1:1/_matrix/push/v1/notify", "application/json", nil)
	if err == nil || !errors.Is(err, errPrivateAddress) {
		t.Fatalf("loopback gateway: %v", err)
	}
}
