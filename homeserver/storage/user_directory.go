package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// The user directory: who can be found by whom, and by which words.
//
// Every user the server knows has a row in user_directory and one row per
// search word in user_directory_terms (each word of the display name and
// of the localpart, lowercased and without accents, stored as bytes so
// that a prefix search is a byte range on both engines whatever the
// database's collation). Rooms shared and public rooms live in
// user_directory_rooms and user_directory_public_rooms, kept by
// homeserver/internal/userdir from the roomserver's output.

// DirectoryUser is a user's entry in the directory.
type DirectoryUser struct {
	UserID string
	// Local is set for users of this server.
	Local       bool
	DisplayName *string
	AvatarURL   *string
}

// maxSearchWords bounds the words of a directory search that are used.
const maxSearchWords = 8

// SearchWords splits s into the directory's search words: lowercased,
// accents removed, split on anything that is not a letter or a digit.
func SearchWords(s string) []string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return strings.FieldsFunc(b.String(), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// localpartOf returns the localpart of a user id ("@alice:hs" → "alice").
func localpartOf(userID string) string {
	lp, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	return lp
}

// directoryTerms returns the distinct words u is found by.
func directoryTerms(u DirectoryUser) []string {
	lp := localpartOf(u.UserID)
	words := SearchWords(lp)
	if folded := strings.Join(SearchWords(lp), ""); folded != "" && len(words) > 1 {
		// "jean.dupont" is found by "jeandupont" too.
		words = append(words, folded)
	}
	if u.DisplayName != nil {
		words = append(words, SearchWords(*u.DisplayName)...)
	}
	seen := map[string]bool{}
	out := words[:0]
	for _, w := range words {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// upsertDirectoryUser writes u's entry and search words.
func upsertDirectoryUser(ctx context.Context, tx *sql.Tx, u DirectoryUser) error {
	name := localpartOf(u.UserID)
	if u.DisplayName != nil && *u.DisplayName != "" {
		name = *u.DisplayName
	}
	sortName := strings.Join(SearchWords(name), " ")
	terms := directoryTerms(u)
	searchText := " " + strings.Join(terms, " ") + " "
	if _, err := tx.ExecContext(ctx, `INSERT INTO user_directory (user_id, is_local, display_name, avatar_url, sort_name, search_text)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name, avatar_url = excluded.avatar_url,
			sort_name = excluded.sort_name, search_text = excluded.search_text`,
		u.UserID, u.Local, u.DisplayName, u.AvatarURL, sortName, searchText); err != nil {
		return fmt.Errorf("store directory entry: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM user_directory_terms WHERE user_id = $1`, u.UserID); err != nil {
		return fmt.Errorf("clear directory terms: %w", err)
	}
	for _, t := range terms {
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_directory_terms (term, user_id) VALUES ($1, $2)
			ON CONFLICT (term, user_id) DO NOTHING`, []byte(t), u.UserID); err != nil {
			return fmt.Errorf("store directory term: %w", err)
		}
	}
	return nil
}

// deleteDirectoryUser removes userID from the directory (deactivation).
func deleteDirectoryUser(ctx context.Context, tx *sql.Tx, userID string) error {
	for _, q := range []string{
		`DELETE FROM user_directory_terms WHERE user_id = $1`,
		`DELETE FROM user_directory_rooms WHERE user_id = $1`,
		`DELETE FROM user_directory WHERE user_id = $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, userID); err != nil {
			return fmt.Errorf("remove from directory: %w", err)
		}
	}
	return nil
}

// setDirectoryHidden records whether userID hides from the directory
// (Tchap's im.vector.hide_profile account data).
func setDirectoryHidden(ctx context.Context, tx *sql.Tx, userID string, hidden bool) error {
	if _, err := tx.ExecContext(ctx, `UPDATE user_directory SET hidden = $1 WHERE user_id = $2`, hidden, userID); err != nil {
		return fmt.Errorf("hide from directory: %w", err)
	}
	return nil
}

// DirectoryMember records a membership change seen in a room: joined
// users are added to the room, others removed. u is the member's profile
// as the member event gives it; for local users the profile table wins
// and u only fills an entry missing (an account from before profiles).
func (s *Store) DirectoryMember(ctx context.Context, roomID string, u DirectoryUser, joined bool) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if !joined {
			if _, err := tx.ExecContext(ctx, `DELETE FROM user_directory_rooms WHERE room_id = $1 AND user_id = $2`, roomID, u.UserID); err != nil {
				return fmt.Errorf("remove directory member: %w", err)
			}
			return nil
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_directory WHERE user_id = $1`, u.UserID).Scan(&n); err != nil {
			return fmt.Errorf("read directory entry: %w", err)
		}
		if n == 0 || !u.Local {
			if err := upsertDirectoryUser(ctx, tx, u); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_directory_rooms (room_id, user_id) VALUES ($1, $2)
			ON CONFLICT (room_id, user_id) DO NOTHING`, roomID, u.UserID); err != nil {
			return fmt.Errorf("add directory member: %w", err)
		}
		return nil
	})
}

// DirectoryPublicRoom records whether roomID's join rule is public.
func (s *Store) DirectoryPublicRoom(ctx context.Context, roomID string, public bool) error {
	q := `DELETE FROM user_directory_public_rooms WHERE room_id = $1`
	if public {
		q = `INSERT INTO user_directory_public_rooms (room_id) VALUES ($1) ON CONFLICT (room_id) DO NOTHING`
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, q, roomID); err != nil {
			return fmt.Errorf("record public room: %w", err)
		}
		return nil
	})
}

// DirectoryResult is one user found.
type DirectoryResult struct {
	UserID      string
	DisplayName *string
	AvatarURL   *string
}

// DirectorySearch is a search of the user directory.
type DirectorySearch struct {
	// Searcher is the user searching.
	Searcher string
	// Term is what they typed.
	Term string
	// Limit caps the results.
	Limit int
	// AllLocal finds every local user, not only those who share a room
	// with the searcher or are in a public room.
	AllLocal bool
}

// SearchDirectory returns up to q.Limit users matching every word of
// q.Term (each word a prefix of a word of the user's display name or
// localpart); limited is set when there were more. Results come in the
// order of the word that matched (an exact word before the longer words
// it begins), and for one word a user whose whole display name is the
// term first, then by name. Hidden users are never found.
//
// The read walks the index of words in order from the first word that
// can match and stops at the limit (PostgreSQL sorts by name within each
// word only: an incremental sort), so a one-letter prefix over a large
// directory does not sort every user it matches.
func (s *Store) SearchDirectory(ctx context.Context, q DirectorySearch) (results []DirectoryResult, limited bool, err error) {
	words := SearchWords(q.Term)
	if len(words) == 0 || q.Limit <= 0 {
		return nil, false, nil
	}
	if len(words) > maxSearchWords {
		words = words[:maxSearchWords]
	}
	// The longest word goes through the index; the others filter.
	lead := 0
	for i, w := range words {
		if len(w) > len(words[lead]) {
			lead = i
		}
	}
	var extra []string
	for i, w := range words {
		if i != lead {
			extra = append(extra, "% "+escapeLike(w)+"%")
		}
	}
	// A user matching on several words comes once per word: read more
	// rows than users wanted (a name rarely has more than three words
	// starting alike), and keep each user's first.
	rows, err := s.directoryRead(ctx, q, []byte(words[lead]), strings.Join(words, " "), extra, 3*(q.Limit+1))
	if err != nil {
		return nil, false, err
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if !seen[r.UserID] {
			seen[r.UserID] = true
			results = append(results, r)
		}
	}
	if len(results) > q.Limit {
		return results[:q.Limit], true, nil
	}
	return results, len(rows) == 3*(q.Limit+1), nil
}

// directoryRead reads up to limit rows (user, matching word) of users
// the searcher may find whose words start with prefix and whose search
// text holds every pattern of like, in the order SearchDirectory gives.
func (s *Store) directoryRead(ctx context.Context, q DirectorySearch, prefix []byte, full string, like []string, limit int) ([]DirectoryResult, error) {
	var b strings.Builder
	var args []any
	if !q.AllLocal {
		// The users the searcher may find, worked out first: the members
		// of the rooms they are in and of public rooms. Bounded by the
		// searcher's rooms, where checking every user matching a short
		// prefix in a large directory would not be.
		args = append(args, q.Searcher)
		b.WriteString(`WITH visible AS (
			SELECT m.user_id FROM user_directory_rooms s JOIN user_directory_rooms m ON m.room_id = s.room_id WHERE s.user_id = $1
			UNION
			SELECT r.user_id FROM user_directory_public_rooms p JOIN user_directory_rooms r ON r.room_id = p.room_id) `)
	}
	args = append(args, prefix, append(append([]byte{}, prefix...), 0xff))
	fmt.Fprintf(&b, `SELECT d.user_id, d.display_name, d.avatar_url
		FROM user_directory_terms t JOIN user_directory d ON d.user_id = t.user_id
		WHERE t.term >= $%d AND t.term < $%d AND NOT d.hidden`, len(args)-1, len(args))
	for _, p := range like {
		args = append(args, p)
		fmt.Fprintf(&b, ` AND d.search_text LIKE $%d ESCAPE '\'`, len(args))
	}
	if q.AllLocal {
		// Every local user, and remote users met in a room shared or
		// public.
		args = append(args, q.Searcher)
		fmt.Fprintf(&b, ` AND (d.is_local OR EXISTS (SELECT 1 FROM user_directory_rooms r JOIN user_directory_rooms m ON m.room_id = r.room_id
			WHERE r.user_id = d.user_id AND m.user_id = $%d)
			OR EXISTS (SELECT 1 FROM user_directory_rooms r JOIN user_directory_public_rooms p ON p.room_id = r.room_id
			WHERE r.user_id = d.user_id))`, len(args))
	} else {
		b.WriteString(` AND d.user_id IN (SELECT user_id FROM visible)`)
	}
	args = append(args, full, limit)
	fmt.Fprintf(&b, ` ORDER BY t.term, d.sort_name <> $%d, d.sort_name, t.user_id LIMIT $%d`, len(args)-1, len(args))
	rows, err := s.db.Read().QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("search user directory: %w", err)
	}
	defer rows.Close()
	var out []DirectoryResult
	for rows.Next() {
		var r DirectoryResult
		if err := rows.Scan(&r.UserID, &r.DisplayName, &r.AvatarURL); err != nil {
			return nil, fmt.Errorf("search user directory: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search user directory: %w", err)
	}
	return out, nil
}

// escapeLike escapes LIKE's wildcards (the pattern's ESCAPE is '\').
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// DirectoryNeedsBackfill reports whether the directory knows no room
// membership at all: on a server that had rooms before the directory
// existed, they must be read once from the roomserver.
func (s *Store) DirectoryNeedsBackfill(ctx context.Context) (bool, error) {
	var n int
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM user_directory_rooms LIMIT 1) x`).Scan(&n); err != nil {
		return false, fmt.Errorf("read directory rooms: %w", err)
	}
	return n == 0, nil
}

// ActiveLocalUsers returns the user ids of the accounts not deactivated,
// for the directory's backfill.
func (s *Store) ActiveLocalUsers(ctx context.Context) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT user_id FROM accounts WHERE NOT deactivated ORDER BY user_id`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
