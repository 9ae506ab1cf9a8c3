package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// SearchDoc is one piece of searchable text: an event's body, name or
// topic.
type SearchDoc struct {
	StreamPos int64
	EventID   string
	RoomID    string
	Sender    string
	Type      string
	// Field is the content key the text comes from: content.body,
	// content.name or content.topic.
	Field string
	Value string
}

// IndexSearch adds docs to the search index and removes the events
// redacted names, in one transaction. Both are idempotent.
func (s *Store) IndexSearch(ctx context.Context, docs []SearchDoc, redacted []string) error {
	if len(docs) == 0 && len(redacted) == 0 {
		return nil
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for _, d := range docs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO search_events (stream_pos, event_id, room_id, sender, event_type, field, value)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
				d.StreamPos, d.EventID, d.RoomID, d.Sender, d.Type, d.Field, d.Value); err != nil {
				return fmt.Errorf("index event for search: %w", err)
			}
		}
		for _, id := range redacted {
			if _, err := tx.ExecContext(ctx, `DELETE FROM search_events WHERE event_id = $1`, id); err != nil {
				return fmt.Errorf("unindex redacted event: %w", err)
			}
		}
		return nil
	})
}

// Orders of search results.
const (
	// SearchRecent: newest first.
	SearchRecent = "recent"
	// SearchRank: best match first (then newest).
	SearchRank = "rank"
)

// SearchQuery is a full-text search of room events.
type SearchQuery struct {
	// Term is what the user typed; every word must match.
	Term string
	// Rooms are the rooms searched; none: nothing is found.
	Rooms []string
	// Senders, when set, keeps only their events; NotSenders drops theirs.
	Senders, NotSenders []string
	// Fields, when set, keeps only these keys (content.body…).
	Fields []string
	// Order is SearchRecent or SearchRank.
	Order string
	// Before, for SearchRecent, keeps events before this stream position
	// (0: from the newest); Offset, for SearchRank, skips that many hits.
	Before int64
	Offset int
	Limit  int
}

// SearchHit is one event found.
type SearchHit struct {
	StreamPos int64
	EventID   string
	RoomID    string
	Rank      float64
}

// fullText is the part of a search query that has no common form. Each
// engine's full-text search is its own syntax: PostgreSQL matches a
// tsvector column against a tsquery and ranks with ts_rank; SQLite joins
// its FTS5 table, matches it with MATCH and ranks with bm25 (lower is
// better, hence the minus). The rest of the query is shared.
type fullText struct {
	from, match, rank string
	// query turns the user's words into the engine's query text.
	query func(words []string) string
}

var fullTextOf = map[storage.Dialect]fullText{
	storage.Postgres: {
		from:  `search_events e, plainto_tsquery('simple', $1) q`,
		match: `e.vector @@ q`,
		rank:  `ts_rank(e.vector, q)`,
		query: func(words []string) string { return strings.Join(words, " ") },
	},
	storage.SQLite: {
		from:  `search_fts JOIN search_events e ON e.stream_pos = search_fts.rowid`,
		match: `search_fts MATCH $1`,
		rank:  `-bm25(search_fts)`,
		// Each word quoted: a string, never FTS5 operators.
		query: func(words []string) string {
			for i, w := range words {
				words[i] = `"` + strings.ReplaceAll(w, `"`, `""`) + `"`
			}
			return strings.Join(words, " ")
		},
	},
}

// textWords splits a search term into words (letters and digits).
func textWords(term string) []string {
	return strings.FieldsFunc(term, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// searchWhere builds the FROM and WHERE clauses of q and their arguments;
// ok is false when nothing can match.
func (s *Store) searchWhere(q SearchQuery) (clause string, args []any, ok bool) {
	words := textWords(q.Term)
	if len(words) == 0 || len(q.Rooms) == 0 {
		return "", nil, false
	}
	ft := fullTextOf[s.db.Dialect]
	args = []any{ft.query(words)}
	var b strings.Builder
	fmt.Fprintf(&b, ` FROM %s WHERE %s`, ft.from, ft.match)
	in := func(col string, not bool, list []string) {
		if len(list) == 0 {
			return
		}
		op := "IN"
		if not {
			op = "NOT IN"
		}
		fmt.Fprintf(&b, ` AND %s %s (%s)`, col, op, storage.Placeholders(len(args)+1, len(list)))
		for _, v := range list {
			args = append(args, v)
		}
	}
	in("e.room_id", false, q.Rooms)
	in("e.sender", false, q.Senders)
	in("e.sender", true, q.NotSenders)
	in("e.field", false, q.Fields)
	return b.String(), args, true
}

// SearchEvents returns up to q.Limit events matching q in q.Order.
func (s *Store) SearchEvents(ctx context.Context, q SearchQuery) ([]SearchHit, error) {
	where, args, ok := s.searchWhere(q)
	if !ok || q.Limit <= 0 {
		return nil, nil
	}
	ft := fullTextOf[s.db.Dialect]
	var b strings.Builder
	fmt.Fprintf(&b, `SELECT e.stream_pos, e.event_id, e.room_id, %s AS score%s`, ft.rank, where)
	if q.Order == SearchRank {
		args = append(args, q.Limit, q.Offset)
		fmt.Fprintf(&b, ` ORDER BY score DESC, e.stream_pos DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args))
	} else {
		if q.Before > 0 {
			args = append(args, q.Before)
			fmt.Fprintf(&b, ` AND e.stream_pos < $%d`, len(args))
		}
		args = append(args, q.Limit)
		fmt.Fprintf(&b, ` ORDER BY e.stream_pos DESC LIMIT $%d`, len(args))
	}
	rows, err := s.db.Read().QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("search events: %w", err)
	}
	defer rows.Close()
	var hits []SearchHit
	for rows.Next() {
		var h SearchHit
		if err := rows.Scan(&h.StreamPos, &h.EventID, &h.RoomID, &h.Rank); err != nil {
			return nil, fmt.Errorf("search events: %w", err)
		}
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search events: %w", err)
	}
	return hits, nil
}

// CountSearchEvents counts the events matching q, up to limit: the count
// of a common word over a large history would cost as much as reading
// every hit, so it stops at limit.
func (s *Store) CountSearchEvents(ctx context.Context, q SearchQuery, limit int) (int, error) {
	where, args, ok := s.searchWhere(q)
	if !ok {
		return 0, nil
	}
	args = append(args, limit)
	var n int
	err := s.db.Read().QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM (SELECT 1%s LIMIT $%d) hits`, where, len(args)), args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count search hits: %w", err)
	}
	return n, nil
}
