package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/config"
)

// eicar is the EICAR antivirus test file: harmless, and detected as a
// virus by every antivirus.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// startClamd starts a clamd for the test and returns its address
// ("unix:…"). No signature database can be downloaded here, so the test
// writes its own: the EICAR file's MD5 and size (a .hdb signature). The
// test is skipped when clamd is not installed (Debian: clamav-daemon).
func startClamd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("clamd")
	if err != nil {
		t.Skip("clamd is not installed (apt-get install clamav-daemon): antivirus test skipped")
	}
	dir, err := os.MkdirTemp("", "clamd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	// MD5:size:name of the EICAR file.
	if err := os.WriteFile(filepath.Join(db, "eicar.hdb"), []byte("44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "clamd.sock")
	conf := "LocalSocket " + sock + "\nDatabaseDirectory " + db + "\nForeground yes\nTemporaryDirectory " + dir + "\nLogFile " + filepath.Join(dir, "clamd.log") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "clamd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-c", filepath.Join(dir, "clamd.conf"))
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start clamd: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return "unix:" + sock
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "clamd.log"))
			t.Fatalf("clamd did not open its socket; log:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMediaAntivirus: with clamd configured, an infected upload (plain or
// async) is refused and kept quarantined, for admins to see; clean files
// pass.
func TestMediaAntivirus(t *testing.T) {
	t.Parallel()
	addr := startClamd(t)
	engines(t, func(t *testing.T, s *Server) {
		alice, admin := s.Register("alice"), s.RegisterAdmin("admin")
		s.mediaDo("POST", "/_matrix/media/v3/upload", alice.AccessToken, []byte(eicar), "Content-Type", "text/plain").expect(t, 403, "M_FORBIDDEN")
		clean := upload(t, alice, []byte("a clean file"), "text/plain", "clean.txt")
		s.mediaDo("GET", downloadPath(clean), alice.AccessToken, nil).expect(t, 200, "")

		created, err := alice.CreateMXC(ctx())
		if err != nil {
			t.Fatal(err)
		}
		uri := created.ContentURI
		s.mediaDo("PUT", "/_matrix/media/v3/upload/"+uri.Homeserver+"/"+uri.FileID, alice.AccessToken, []byte(eicar), "Content-Type", "text/plain").expect(t, 403, "M_FORBIDDEN")
		s.mediaDo("GET", downloadPath(uri), alice.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")

		r := s.mediaDo("GET", "/_synapse/admin/v1/users/"+alice.UserID.String()+"/media", admin.AccessToken, nil).expect(t, 200, "")
		list, _ := r.JSON["media"].([]any)
		quarantined := 0
		for _, m := range list {
			if m.(map[string]any)["quarantined"] == true {
				quarantined++
				if m.(map[string]any)["sha256"] != "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f" {
					t.Errorf("quarantined item %v is not the EICAR file", m)
				}
			}
		}
		if len(list) != 3 || quarantined != 2 {
			t.Errorf("alice's media: %d items, %d quarantined; want 3 and 2: %s", len(list), quarantined, r.Body)
		}
	}, func(c *config.Config) { c.Media.ClamdAddress = addr })
}
