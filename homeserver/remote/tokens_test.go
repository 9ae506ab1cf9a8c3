package remote

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
)

// errDatabase is an error the TokenQuerier does not declare.
var errDatabase = errors.New("database unreachable")

// fakeTokens answers from a table: a token maps to a device or an error.
type fakeTokens map[string]struct {
	dev api.Device
	err error
}

func (f fakeTokens) QueryAccessToken(ctx context.Context, token string) (api.Device, error) {
	r, ok := f[token]
	if !ok {
		return api.Device{}, api.ErrUnknownToken
	}
	return r.dev, r.err
}

// QueryOpenIDToken answers "oid_<user>" with the user.
func (f fakeTokens) QueryOpenIDToken(ctx context.Context, token string) (string, error) {
	if user, ok := strings.CutPrefix(token, "oid_"); ok {
		return user, nil
	}
	return "", api.ErrUnknownToken
}

func TestTokenClient(t *testing.T) {
	alice := api.Device{UserID: "@alice:example.org", DeviceID: "ALICEPHONE", IsAdmin: true}
	fake := fakeTokens{
		"mat_alice":   {dev: alice},
		"mat_expired": {err: api.ErrSoftLogout},
		"mat_broken":  {err: errDatabase},
	}
	b := bustest.Embedded(t)
	stop, err := ServeTokens(b, fake)
	if err != nil {
		t.Fatalf("serve tokens: %v", err)
	}
	defer stop()
	stopOpenID, err := ServeOpenID(b, fake)
	if err != nil {
		t.Fatalf("serve OpenID tokens: %v", err)
	}
	defer stopOpenID()
	client := NewTokenClient(b)

	tests := []struct {
		token   string
		want    api.Device
		wantErr error // errors.Is must hold; nil: no error
	}{
		{token: "mat_alice", want: alice},
		{token: "mat_nobody", wantErr: api.ErrUnknownToken},
		{token: "mat_expired", wantErr: api.ErrSoftLogout},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			got, err := client.QueryAccessToken(context.Background(), tt.token)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("device %+v, want %+v", got, tt.want)
			}
			if errors.Is(tt.wantErr, api.ErrUnknownToken) && errors.Is(err, api.ErrSoftLogout) {
				t.Fatalf("%v also matches ErrSoftLogout", err)
			}
		})
	}

	t.Run("openid", func(t *testing.T) {
		if user, err := client.QueryOpenIDToken(context.Background(), "oid_@alice:example.org"); err != nil || user != "@alice:example.org" {
			t.Fatalf("got %q, %v", user, err)
		}
		if _, err := client.QueryOpenIDToken(context.Background(), "nope"); !errors.Is(err, api.ErrUnknownToken) {
			t.Fatalf("unknown token: %v", err)
		}
	})

	t.Run("undeclared error", func(t *testing.T) {
		_, err := client.QueryAccessToken(context.Background(), "mat_broken")
		var re *bus.RemoteError
		if !errors.As(err, &re) || re.Code != bus.CodeInternal || re.Message != errDatabase.Error() {
			t.Fatalf("error %v, want a RemoteError %s %q", err, bus.CodeInternal, errDatabase)
		}
		if errors.Is(err, api.ErrUnknownToken) || errors.Is(err, api.ErrSoftLogout) {
			t.Fatalf("%v matches a token sentinel", err)
		}
	})

	t.Run("nobody serves", func(t *testing.T) {
		stop()
		if _, err := client.QueryAccessToken(context.Background(), "mat_alice"); !errors.Is(err, bus.ErrNoResponders) {
			t.Fatalf("error %v, want bus.ErrNoResponders", err)
		}
	})
}
