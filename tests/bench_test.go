package tests

import (
	"testing"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// benchEngines runs a benchmark per storage engine on a server with the
// production password hashing cost (argon2id, 19 MiB, 2 passes), so login
// figures are what an operator will see.
func benchEngines(b *testing.B, fn func(b *testing.B, s *Server)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, benchServer(b, storagetest.SQLiteURL(b))) })
	b.Run("postgres", func(b *testing.B) { fn(b, benchServer(b, storagetest.PostgresURL(b))) })
}

func benchServer(b *testing.B, url string) *Server {
	return StartServer(b, url, func(c *config.Config) {
		c.Client.Auth.Argon2Memory, c.Client.Auth.Argon2Time = 0, 0            // defaults
		c.Client.RateLimits.Request = config.RateLimit{PerSecond: 0, Burst: 1} // off: measure the server, not the limiter
	})
}

// BenchmarkLogin measures POST /login with a password: hashing dominates.
func BenchmarkLogin(b *testing.B) {
	benchEngines(b, func(b *testing.B, s *Server) {
		s.Register("alice")
		body := loginBody("alice", testPassword)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if r := s.Do("POST", "/_matrix/client/v3/login", "", body); r.Status != 200 {
				b.Fatalf("login: %d %s", r.Status, r.Raw)
			}
		}
	})
}

// BenchmarkWhoami measures an authenticated request end to end: token
// lookup plus the HTTP round trip, in parallel as clients would.
func BenchmarkWhoami(b *testing.B) {
	benchEngines(b, func(b *testing.B, s *Server) {
		tok := s.Register("alice").AccessToken
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if r := s.Do("GET", "/_matrix/client/v3/account/whoami", tok, nil); r.Status != 200 {
					b.Errorf("whoami: %d %s", r.Status, r.Raw)
					return
				}
			}
		})
	})
}
