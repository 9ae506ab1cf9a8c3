package storage

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Relation is one event's m.relates_to.
type Relation struct {
	EventNID int64
	// Pos is the event's timeline position (Event.Pos), which orders
	// relations.
	Pos       int64
	RelatesTo string
	RelType   string
	EventType string
	Sender    string
}

// InsertRelation indexes an accepted event's relation.
func (s *Store) InsertRelation(ctx context.Context, tx *sql.Tx, roomNID int64, r Relation) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO roomserver_relations (event_nid, room_nid, relates_to, rel_type, event_type, sender, pos)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`, r.EventNID, roomNID, r.RelatesTo, r.RelType, r.EventType, r.Sender, r.Pos); err != nil {
		return fmt.Errorf("index relation: %w", err)
	}
	return nil
}

// RelationsQuery selects the events related to one event.
type RelationsQuery struct {
	RelatesTo string
	// RelType and EventType filter when not empty.
	RelType, EventType string
	// From is a timeline position, exclusive; 0 starts from the newest
	// (backward) or the oldest (forward).
	From    int64
	Forward bool
	Limit   int
}

// Relations returns the nids of the served events related to an event,
// newest first unless Forward.
func (s *Store) Relations(ctx context.Context, q RelationsQuery) ([]int64, error) {
	cmp, order := "<", "DESC"
	from := q.From
	if q.Forward {
		cmp, order = ">", "ASC"
		if from == 0 {
			from = -1 << 62 // backfilled events have negative positions
		}
	} else if from == 0 {
		from = 1 << 62
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT r.event_nid FROM roomserver_relations r JOIN roomserver_events e ON e.event_nid = r.event_nid
		WHERE r.relates_to = $1 AND ($2 = '' OR r.rel_type = $3) AND ($4 = '' OR r.event_type = $5) AND r.pos `+cmp+` $6
		AND e.rejected = '' AND NOT e.soft_failed
		ORDER BY r.pos `+order+` LIMIT $7`, q.RelatesTo, q.RelType, q.RelType, q.EventType, q.EventType, from, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list relations: %w", err)
	}
	return scanNIDs(rows)
}

// RelationSummary aggregates one relation type of one event.
type RelationSummary struct {
	RelatesTo string
	RelType   string
	Count     int64
	// LatestNID is the newest related event (by position).
	LatestNID int64
}

// RelationSummaries aggregates the given relation types of the given
// events: count and newest related event per (event, rel_type).
func (s *Store) RelationSummaries(ctx context.Context, eventIDs []string, relTypes []string) ([]RelationSummary, error) {
	var out []RelationSummary
	for start := 0; start < len(eventIDs); start += inChunk {
		chunk := eventIDs[start:min(start+inChunk, len(eventIDs))]
		args := make([]any, 0, len(chunk)+len(relTypes))
		for _, id := range chunk {
			args = append(args, id)
		}
		for _, rt := range relTypes {
			args = append(args, rt)
		}
		// The newest is the one at the highest position, which is its nid
		// unless the event was backfilled (negative), then looked up.
		rows, err := s.db.Read().QueryContext(ctx, `SELECT r.relates_to, r.rel_type, COUNT(*), MAX(r.pos), MAX(r.room_nid)
			FROM roomserver_relations r JOIN roomserver_events e ON e.event_nid = r.event_nid
			WHERE r.relates_to IN (`+storage.Placeholders(1, len(chunk))+`) AND r.rel_type IN (`+storage.Placeholders(len(chunk)+1, len(relTypes))+`)
			AND e.rejected = '' AND NOT e.soft_failed AND e.redacted_by = ''
			GROUP BY r.relates_to, r.rel_type`, args...)
		if err != nil {
			return nil, fmt.Errorf("summarise relations: %w", err)
		}
		var backfilled []int // indexes in out, with the room nid
		var rooms []int64
		for rows.Next() {
			var r RelationSummary
			var room int64
			if err := rows.Scan(&r.RelatesTo, &r.RelType, &r.Count, &r.LatestNID, &room); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan relation summary: %w", err)
			}
			if r.LatestNID < 0 {
				backfilled, rooms = append(backfilled, len(out)), append(rooms, room)
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for i, at := range backfilled {
			if err := s.db.Read().QueryRowContext(ctx, `SELECT event_nid FROM roomserver_events WHERE room_nid = $1 AND COALESCE(backfill_pos, event_nid) = $2`,
				rooms[i], out[at].LatestNID).Scan(&out[at].LatestNID); err != nil {
				return nil, fmt.Errorf("the newest relation of %s: %w", out[at].RelatesTo, err)
			}
		}
	}
	return out, nil
}

// Participated reports which of the thread roots userID sent or replied in.
func (s *Store) Participated(ctx context.Context, userID string, rootIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(rootIDs); start += inChunk {
		chunk := rootIDs[start:min(start+inChunk, len(rootIDs))]
		args := []any{userID}
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := s.db.Read().QueryContext(ctx, `SELECT DISTINCT relates_to FROM roomserver_relations
			WHERE sender = $1 AND rel_type = 'm.thread' AND relates_to IN (`+storage.Placeholders(2, len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("thread participation: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = true
		}
		rows.Close()
	}
	return out, nil
}

// ThreadRoots returns the ids of a room's thread roots ordered by their
// latest reply, newest first, before the reply position from (0: the
// newest); with userID, only threads that user started or replied in. It
// returns the latest reply position of each root, for paging.
func (s *Store) ThreadRoots(ctx context.Context, roomNID int64, userID string, from int64, limit int) (roots []string, latest []int64, err error) {
	if from == 0 {
		from = 1 << 62
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT t.relates_to, t.latest FROM (
			SELECT r.relates_to, MAX(r.pos) AS latest FROM roomserver_relations r JOIN roomserver_events e ON e.event_nid = r.event_nid
			WHERE r.room_nid = $1 AND r.rel_type = 'm.thread' AND e.rejected = '' AND NOT e.soft_failed
			GROUP BY r.relates_to
		) t
		WHERE t.latest < $2 AND ($3 = '' OR EXISTS (
			SELECT 1 FROM roomserver_relations p WHERE p.relates_to = t.relates_to AND p.rel_type = 'm.thread' AND p.sender = $4)
			OR EXISTS (SELECT 1 FROM roomserver_events re WHERE re.event_id = t.relates_to AND re.sender = $5))
		ORDER BY t.latest DESC LIMIT $6`, roomNID, from, userID, userID, userID, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("list threads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var l int64
		if err := rows.Scan(&id, &l); err != nil {
			return nil, nil, err
		}
		roots, latest = append(roots, id), append(latest, l)
	}
	return roots, latest, rows.Err()
}

func scanNIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
