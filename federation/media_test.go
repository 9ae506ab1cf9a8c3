package federation

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	mediaapi "github.com/matrix-gouv/homeserver/mediaapi/api"
)

// TestFetchMediaRedirect: a media answer that redirects (a Location part)
// is followed to a host the allow-list lets this server contact, and to
// no other.
func TestFetchMediaRedirect(t *testing.T) {
	cdn := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/files/abc" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Disposition", `attachment; filename="cat.png"`)
		io.WriteString(w, "png bytes")
	}))
	defer cdn.Close()
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/mixed; boundary=b")
		fmt.Fprintf(w, "--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nLocation: %s/files/abc\r\n\r\n\r\n--b--\r\n", cdn.URL)
	}))
	defer origin.Close()
	// httptest's certificate is valid for example.com and 127.0.0.1.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: origin.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	component := func(allowed ...string) *Component {
		key, err := config.NewSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(Deps{
			Global: &config.Global{ServerName: testServerName, SigningKey: key.String()},
			Config: &config.Federation{KeyValidity: config.Duration(time.Hour), AllowedServers: allowed, TrustedCAFile: caFile,
				ServerAddresses: map[string]string{"example.com": strings.TrimPrefix(origin.URL, "https://")}, AllowPrivateAddresses: true},
			Log: logrus.NewEntry(logrus.New()),
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	f, err := component("example.com", "127.0.0.1").FetchMedia(context.Background(), "example.com", "abc")
	if err != nil {
		t.Fatalf("a redirect to an allowed host: %v", err)
	}
	body, _ := io.ReadAll(f.Body)
	f.Body.Close()
	if string(body) != "png bytes" || f.ContentType != "image/png" || f.FileName != "cat.png" {
		t.Errorf("redirected file: %q %q %q", body, f.ContentType, f.FileName)
	}

	// A closed federation that does not list the media host.
	if _, err := component("example.com").FetchMedia(context.Background(), "example.com", "abc"); !errors.Is(err, mediaapi.ErrNotFound) {
		t.Errorf("a redirect to a host off the list: %v", err)
	}
}
