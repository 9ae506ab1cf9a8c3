package storage_test

import (
	"context"
	"slices"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func TestSearchWords(t *testing.T) {
	for in, want := range map[string][]string{
		"Élodie Dupré":     {"elodie", "dupre"},
		"jean-luc.picard":  {"jean", "luc", "picard"},
		"  ÇA  va 42 ":     {"ca", "va", "42"},
		"李小龍 Bruce":        {"李小龍", "bruce"},
		"%_\\":             nil,
		"Ångström_Øresund": {"angstrom", "øresund"},
	} {
		if got := storage.SearchWords(in); !slices.Equal(got, want) {
			t.Errorf("SearchWords(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDirectorySearchOnBothEngines(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		for _, lp := range []string{"searcher", "a_percent", "ann", "anne", "bob"} {
			if err := s.CreateAccount(ctx, storage.NewAccount{UserID: "@" + lp + ":x", Localpart: lp, PasswordHash: "h"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, lp := range []string{"searcher", "a_percent", "ann", "anne"} {
			if err := s.DirectoryMember(ctx, "!r:x", storage.DirectoryUser{UserID: "@" + lp + ":x", Local: true}, true); err != nil {
				t.Fatal(err)
			}
		}
		// A remote user met in a public room.
		name := "Annette Remote"
		if err := s.DirectoryMember(ctx, "!pub:y", storage.DirectoryUser{UserID: "@annette:y", DisplayName: &name}, true); err != nil {
			t.Fatal(err)
		}
		if err := s.DirectoryPublicRoom(ctx, "!pub:y", true); err != nil {
			t.Fatal(err)
		}
		search := func(term string, all bool) []string {
			res, _, err := s.SearchDirectory(ctx, storage.DirectorySearch{Searcher: "@searcher:x", Term: term, Limit: 10, AllLocal: all})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range res {
				ids = append(ids, r.UserID)
			}
			return ids
		}
		if got := search("ann", false); !slices.Equal(got, []string{"@ann:x", "@anne:x", "@annette:y"}) {
			t.Fatalf("ann: %v", got)
		}
		// LIKE wildcards in a term are plain characters.
		if got := search("a pe", false); !slices.Equal(got, []string{"@a_percent:x"}) {
			t.Fatalf("a pe: %v", got)
		}
		if got := search("bob", false); len(got) != 0 {
			t.Fatalf("bob shares no room: %v", got)
		}
		if got := search("bob", true); !slices.Equal(got, []string{"@bob:x"}) {
			t.Fatalf("bob among all local users: %v", got)
		}
		// Leaving the public room's list hides the remote user.
		if err := s.DirectoryPublicRoom(ctx, "!pub:y", false); err != nil {
			t.Fatal(err)
		}
		if got := search("annette", true); len(got) != 0 {
			t.Fatalf("remote user outside shared and public rooms: %v", got)
		}
	})
}
