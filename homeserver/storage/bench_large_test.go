package storage_test

import (
	"context"
	"database/sql"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// Large benchmarks of the user directory and of search, on PostgreSQL,
// with fixtures written straight into the tables by SQL (generate_series:
// a million rows in seconds, never through the API). They run only when
// asked, so that the normal test run stays fast:
//
//	HOMESERVER_BENCH_LARGE=1 HOMESERVER_TEST_POSTGRES=postgres://… \
//	  go test ./homeserver/storage -run '^$' -bench Large -benchtime 500x
//
// Each reports p50 and p99 latencies of one query (ms).

// benchLargeEnv asks for the large benchmarks.
const benchLargeEnv = "HOMESERVER_BENCH_LARGE"

// largeDB opens a fresh PostgreSQL database, or skips.
func largeDB(b *testing.B) *dbstorage.DB {
	b.Helper()
	if os.Getenv(benchLargeEnv) == "" || os.Getenv(storagetest.PostgresEnv) == "" {
		b.Skipf("set %s and %s to run", benchLargeEnv, storagetest.PostgresEnv)
	}
	if url := os.Getenv(benchKeepEnv); url != "" {
		return storagetest.Open(b, url)
	}
	return storagetest.Open(b, storagetest.PostgresURL(b))
}

// benchKeepEnv names an empty database to fill and keep instead of a
// fresh one dropped afterwards, to look at query plans after a run.
const benchKeepEnv = "HOMESERVER_BENCH_KEEP_DB"

// exec runs fixture SQL in one transaction.
func exec(b *testing.B, db *dbstorage.DB, stmts ...string) {
	b.Helper()
	err := db.Write(context.Background(), func(tx *sql.Tx) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(context.Background(), s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("fixture: %v", err)
	}
}

// vacuum runs VACUUM ANALYZE on tables, as autovacuum would after a
// while (statistics for the planner, visibility for index-only scans).
func vacuum(b *testing.B, db *dbstorage.DB, tables ...string) {
	b.Helper()
	for _, t := range tables {
		if _, err := db.Read().ExecContext(context.Background(), "VACUUM ANALYZE "+t); err != nil {
			b.Fatalf("vacuum %s: %v", t, err)
		}
	}
}

// latencies times op b.N times and reports p50 and p99.
func latencies(b *testing.B, op func(i int)) {
	b.Helper()
	d := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		op(i)
		d[i] = time.Since(start)
	}
	b.StopTimer()
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// firstNames and lastNames make the directory's display names.
const (
	firstNames = `ARRAY['Marie','Jean','Pierre','Michel','Anne','Nathalie','Isabelle','Sylvie','Catherine','Philippe','Alain','Nicolas','Christophe','Patrick','Sophie','Julien','Camille','Léa','Chloé','Emma','Hugo','Lucas','Louis','Gabriel','Arthur','Jules','Inès','Manon','Zoé','Sarah','Thomas','Antoine','Claire','Julie','Céline','Laurent','Éric','Olivier','David','Sébastien','Aurélie','Élodie','Mathieu','Vincent','François','Hélène','Margaux','Pauline','Romain','Maxime']`
	lastNames  = `ARRAY['Martin','Bernard','Dubois','Thomas','Robert','Richard','Petit','Durand','Leroy','Moreau','Simon','Laurent','Lefebvre','Michel','Garcia','David','Bertrand','Roux','Vincent','Fournier','Morel','Girard','André','Lefèvre','Mercier','Dupont','Lambert','Bonnet','François','Martinez','Legrand','Garnier','Faure','Rousseau','Blanc','Guérin','Muller','Henry','Roussel','Nicolas','Perrin','Morin','Mathieu','Clément','Gauthier','Dumont','Lopez','Fontaine','Chevalier','Robin','Masson','Sanchez','Gérard','Nguyen','Boyer','Denis','Lemaire','Duval','Joly','Gautier','Roger','Roche','Roy','Noël','Meyer','Lucas','Meunier','Jean','Pérez','Marchand','Dufour','Blanchard','Marie','Barbier','Brun','Dumas','Brunet','Schmitt','Leroux','Colin','Fernandez','Pierre','Renard','Arnaud','Rolland','Caron','Aubert','Giraud','Leclerc','Vidal','Bourgeois','Renaud','Lemoine','Picard','Gaillard','Philippe','Leclercq','Lacroix','Fabre','Dupuis']`
)

// BenchmarkLargeUserDirectory searches a directory of 50 000 local users
// in 1 000 rooms of 50 (the searcher in 20 of them, 10 rooms public), by
// name prefixes, full names and localparts.
func BenchmarkLargeUserDirectory(b *testing.B) {
	db := largeDB(b)
	start := time.Now()
	// Names are folded (lowercase, no accents) the way SearchWords does,
	// with translate() for the accents the lists hold.
	fold := func(col string) string {
		return `translate(lower(` + col + `), 'éèëêàçïîôöüû', 'eeeeaciioouu')`
	}
	exec(b, db,
		`INSERT INTO user_directory (user_id, is_local, display_name, sort_name, search_text)
		 SELECT '@u' || g || ':bench', TRUE, f || ' ' || l, `+fold(`f || ' ' || l`)+`,
		        ' ' || `+fold(`f`)+` || ' ' || `+fold(`l`)+` || ' u' || g || ' '
		 FROM generate_series(1, 50000) g,
		      LATERAL (SELECT (`+firstNames+`)[1 + g % 50] AS f, (`+lastNames+`)[1 + (g / 50) % 100] AS l) n`,
		`INSERT INTO user_directory_terms (term, user_id)
		 SELECT DISTINCT convert_to(w, 'UTF8'), user_id FROM user_directory, regexp_split_to_table(trim(search_text), ' ') w`,
		`INSERT INTO user_directory_rooms (room_id, user_id)
		 SELECT '!r' || (g % 1000) || ':bench', '@u' || g || ':bench' FROM generate_series(1, 50000) g`,
		`INSERT INTO user_directory_rooms (room_id, user_id)
		 SELECT '!r' || r || ':bench', '@searcher:bench' FROM generate_series(0, 19) r`,
		`INSERT INTO user_directory_public_rooms (room_id) SELECT '!r' || (500 + r) || ':bench' FROM generate_series(0, 9) r`)
	vacuum(b, db, "user_directory", "user_directory_terms", "user_directory_rooms", "user_directory_public_rooms")
	b.Logf("fixture: 50 000 users in %v", time.Since(start).Round(time.Millisecond))
	s := storage.New(db)
	terms := []string{"mar", "marie", "jean dup", "Élodie", "u4242", "dupont", "ma", "zoé martin", "l", "nicolas", "chloé ga", "philippe leroy"}
	for _, all := range []bool{false, true} {
		name := "shared-rooms"
		if all {
			name = "all-local-users"
		}
		b.Run(name, func(b *testing.B) {
			latencies(b, func(i int) {
				if _, _, err := s.SearchDirectory(context.Background(), storage.DirectorySearch{
					Searcher: "@searcher:bench", Term: terms[i%len(terms)], Limit: 10, AllLocal: all,
				}); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkLargeSearch searches 1 000 000 messages in 200 rooms, all the
// searcher's, ordered by recent: a rare word (100 hits), a common one
// (100 000 hits, top 10), with the capped count /search also runs.
func BenchmarkLargeSearch(b *testing.B) {
	db := largeDB(b)
	start := time.Now()
	// Three words of twenty, a word of 50 000 ("w123"), "meeting" in one
	// message of ten, "zanzibar" in one of 10 000.
	const words = `(ARRAY['hello','lunch','report','budget','draft','review','team','monday','call','notes','project','deadline','slides','coffee','agenda','minutes','client','invoice','travel','office'])`
	exec(b, db,
		`INSERT INTO search_events (stream_pos, event_id, room_id, sender, event_type, field, value)
		 SELECT g, '$e' || g, '!r' || (g % 200) || ':bench', '@u' || (g % 5000) || ':bench', 'm.room.message', 'content.body',
		        `+words+`[1 + g % 20] || ' ' || `+words+`[1 + (g / 20) % 20] || ' ' || `+words+`[1 + (g / 400) % 20]
		        || ' w' || (g % 50000)
		        || CASE WHEN g % 10 = 3 THEN ' meeting' ELSE '' END
		        || CASE WHEN g % 10000 = 7 THEN ' zanzibar' ELSE '' END
		 FROM generate_series(1, 1000000) g`)
	vacuum(b, db, "search_events")
	b.Logf("fixture: 1 000 000 messages in %v", time.Since(start).Round(time.Millisecond))
	s := storage.New(db)
	rooms := make([]string, 200)
	for i := range rooms {
		rooms[i] = "!r" + strconv.Itoa(i) + ":bench"
	}
	for _, tc := range []struct{ name, term string }{{"rare", "zanzibar"}, {"common", "meeting"}} {
		b.Run(tc.name, func(b *testing.B) {
			q := storage.SearchQuery{Term: tc.term, Rooms: rooms, Order: storage.SearchRecent, Limit: 10}
			hits, err := s.SearchEvents(context.Background(), storage.SearchQuery{Term: tc.term, Rooms: rooms, Order: storage.SearchRecent, Limit: 200000})
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: %d hits", tc.term, len(hits))
			latencies(b, func(int) {
				if hits, err := s.SearchEvents(context.Background(), q); err != nil || len(hits) != 10 {
					b.Fatalf("search: %d hits, %v", len(hits), err)
				}
				if _, err := s.CountSearchEvents(context.Background(), q, 1000); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
