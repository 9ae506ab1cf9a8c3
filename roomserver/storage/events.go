package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Event is an event's row.
type Event struct {
	NID            int64
	RoomNID        int64
	EventID        string
	Tuple          StateKeyNIDs // StateKeyNID 0 for non-state events
	Depth          int64
	OriginServerTS int64
	Sender         string
	JSON           []byte
	StateBeforeNID int64
	StateAfterNID  int64
	Rejected       string
	SoftFailed     bool
	RedactedBy     string
	// Outlier events are known only as part of a room's state or auth
	// chain (a remote join's answer): they authorise later events and
	// are state, but have no place in the timeline and no state of
	// their own (StateBeforeNID and StateAfterNID are 0).
	Outlier bool
	// BackfillPos is the timeline position of an event fetched from
	// another server's history (/backfill): negative, below every event
	// the room had then. 0 for the others, whose position is NID.
	BackfillPos int64
}

// Pos is the event's timeline position (api.Event's StreamPos).
func (e Event) Pos() int64 {
	if e.BackfillPos != 0 {
		return e.BackfillPos
	}
	return e.NID
}

// timelinePos is Event.Pos in SQL; the index roomserver_events_timeline
// serves it.
const timelinePos = "COALESCE(backfill_pos, event_nid)"

// nullZero stores 0 as NULL (a column where 0 means none).
func nullZero(n int64) sql.NullInt64 { return sql.NullInt64{Int64: n, Valid: n != 0} }

// IsState reports whether the event is a state event.
func (e Event) IsState() bool { return e.Tuple.StateKeyNID != 0 }

const eventColumns = `event_nid, room_nid, event_id, type_nid, state_key_nid, depth, origin_server_ts, sender, event_json,
	state_before_nid, state_after_nid, rejected, soft_failed, redacted_by, outlier, backfill_pos`

func scanEvent(sc interface{ Scan(...any) error }) (Event, error) {
	var e Event
	var js string
	var pos sql.NullInt64
	err := sc.Scan(&e.NID, &e.RoomNID, &e.EventID, &e.Tuple.TypeNID, &e.Tuple.StateKeyNID, &e.Depth, &e.OriginServerTS, &e.Sender, &js,
		&e.StateBeforeNID, &e.StateAfterNID, &e.Rejected, &e.SoftFailed, &e.RedactedBy, &e.Outlier, &pos)
	e.JSON, e.BackfillPos = []byte(js), pos.Int64
	return e, err
}

// InsertEvent stores an event and returns its nid.
func (s *Store) InsertEvent(ctx context.Context, tx *sql.Tx, e Event) (int64, error) {
	var nid int64
	err := tx.QueryRowContext(ctx, `INSERT INTO roomserver_events (room_nid, event_id, type_nid, state_key_nid, depth, origin_server_ts, sender,
		event_json, state_before_nid, state_after_nid, rejected, soft_failed, outlier, backfill_pos)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING event_nid`,
		e.RoomNID, e.EventID, e.Tuple.TypeNID, e.Tuple.StateKeyNID, e.Depth, e.OriginServerTS, e.Sender, string(e.JSON),
		e.StateBeforeNID, e.StateAfterNID, e.Rejected, e.SoftFailed, e.Outlier, nullZero(e.BackfillPos)).Scan(&nid)
	if err != nil {
		return 0, fmt.Errorf("insert event %s: %w", e.EventID, err)
	}
	return nid, nil
}

// InsertEvents stores many events and returns their nids, in order, with
// one statement per bulkRows events (the outliers of a remote join).
func (s *Store) InsertEvents(ctx context.Context, tx *sql.Tx, evs []Event) ([]int64, error) {
	const cols = 13
	nids := make([]int64, 0, len(evs))
	for len(evs) > 0 {
		chunk := evs[:min(len(evs), bulkRows/2)]
		evs = evs[len(chunk):]
		args := make([]any, 0, cols*len(chunk))
		for _, e := range chunk {
			args = append(args, e.RoomNID, e.EventID, e.Tuple.TypeNID, e.Tuple.StateKeyNID, e.Depth, e.OriginServerTS, e.Sender, string(e.JSON),
				e.StateBeforeNID, e.StateAfterNID, e.Rejected, e.SoftFailed, e.Outlier)
		}
		rows, err := tx.QueryContext(ctx, `INSERT INTO roomserver_events (room_nid, event_id, type_nid, state_key_nid, depth, origin_server_ts, sender,
			event_json, state_before_nid, state_after_nid, rejected, soft_failed, outlier) VALUES `+storage.ValueRows(1, len(chunk), cols)+`
			RETURNING event_id, event_nid`, args...)
		if err != nil {
			return nil, fmt.Errorf("insert %d events: %w", len(chunk), err)
		}
		// RETURNING's order is not promised: match by event id.
		byID := make(map[string]int64, len(chunk))
		for rows.Next() {
			var id string
			var nid int64
			if err := rows.Scan(&id, &nid); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan inserted event: %w", err)
			}
			byID[id] = nid
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("insert %d events: %w", len(chunk), err)
		}
		for _, e := range chunk {
			nid, ok := byID[e.EventID]
			if !ok {
				return nil, fmt.Errorf("insert events: no nid for %s", e.EventID)
			}
			nids = append(nids, nid)
		}
	}
	return nids, nil
}

// SetStateAfter records the snapshot after a state event, known only once
// the event has its nid.
func (s *Store) SetStateAfter(ctx context.Context, tx *sql.Tx, eventNID, snapshotNID int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE roomserver_events SET state_after_nid = $1 WHERE event_nid = $2`, snapshotNID, eventNID); err != nil {
		return fmt.Errorf("set state after: %w", err)
	}
	return nil
}

// SetRedactedBy marks an event redacted by the redaction redactionID.
func (s *Store) SetRedactedBy(ctx context.Context, tx *sql.Tx, eventNID int64, redactionID string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE roomserver_events SET redacted_by = $1 WHERE event_nid = $2 AND redacted_by = ''`, redactionID, eventNID); err != nil {
		return fmt.Errorf("mark redacted: %w", err)
	}
	return nil
}

// EventByID loads an event by id, or ErrNotFound.
func (s *Store) EventByID(ctx context.Context, q storage.Querier, eventID string) (Event, error) {
	e, err := scanEvent(q.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM roomserver_events WHERE event_id = $1`, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("load event %s: %w", eventID, err)
	}
	return e, nil
}

// inChunk is how many ids one IN list holds, well under both engines'
// limits on parameters.
const inChunk = 500

// EventsByNID loads events by nid, in no particular order; unknown nids
// are left out.
func (s *Store) EventsByNID(ctx context.Context, nids []int64) ([]Event, error) {
	args := make([]any, len(nids))
	for i, n := range nids {
		args[i] = n
	}
	return s.eventsWhereIn(ctx, "event_nid", args)
}

// EventsByID loads events by id; unknown ids are left out.
func (s *Store) EventsByID(ctx context.Context, ids []string) ([]Event, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return s.eventsWhereIn(ctx, "event_id", args)
}

func (s *Store) eventsWhereIn(ctx context.Context, column string, args []any) ([]Event, error) {
	out := make([]Event, 0, len(args))
	for start := 0; start < len(args); start += inChunk {
		chunk := args[start:min(start+inChunk, len(args))]
		rows, err := s.db.Read().QueryContext(ctx, `SELECT `+eventColumns+` FROM roomserver_events WHERE `+column+` IN (`+storage.Placeholders(1, len(chunk))+`)`, chunk...)
		if err != nil {
			return nil, fmt.Errorf("load events: %w", err)
		}
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan event: %w", err)
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load events: %w", err)
		}
	}
	return out, nil
}

// Timeline returns up to limit accepted, served events of a room after
// (Forward) or before (Backward) timeline position from (Event.Pos).
func (s *Store) Timeline(ctx context.Context, roomNID, from int64, forward bool, limit int) ([]Event, error) {
	cond, order := timelinePos+" > $2", "ASC"
	if !forward {
		cond, order = timelinePos+" < $2", "DESC"
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT `+eventColumns+` FROM roomserver_events
		WHERE room_nid = $1 AND `+cond+` AND rejected = '' AND NOT soft_failed AND NOT outlier
		ORDER BY `+timelinePos+` `+order+` LIMIT $3`, roomNID, from, limit)
	if err != nil {
		return nil, fmt.Errorf("load timeline: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// LatestNID returns the highest event nid.
func (s *Store) LatestNID(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	if err := s.db.Read().QueryRowContext(ctx, `SELECT MAX(event_nid) FROM roomserver_events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("latest event: %w", err)
	}
	return n.Int64, nil
}

// EventNearTS returns the served event of a room closest to ts in the
// given direction: the first at or after it (forward) or the last at or
// before it (backward); ErrNotFound when there is none.
func (s *Store) EventNearTS(ctx context.Context, roomNID, ts int64, forward bool) (Event, error) {
	cmp, order := "<=", "DESC"
	if forward {
		cmp, order = ">=", "ASC"
	}
	e, err := scanEvent(s.db.Read().QueryRowContext(ctx, `SELECT `+eventColumns+` FROM roomserver_events
		WHERE room_nid = $1 AND origin_server_ts `+cmp+` $2 AND rejected = '' AND NOT soft_failed AND NOT outlier
		ORDER BY origin_server_ts `+order+`, event_nid `+order+` LIMIT 1`, roomNID, ts))
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("event near timestamp: %w", err)
	}
	return e, nil
}

// OldestPos returns the lowest timeline position of a room's events (0
// when it has none): backfilled events go below it.
func (s *Store) OldestPos(ctx context.Context, tx *sql.Tx, roomNID int64) (int64, error) {
	var n sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MIN(`+timelinePos+`) FROM roomserver_events WHERE room_nid = $1 AND NOT outlier`,
		roomNID).Scan(&n); err != nil {
		return 0, fmt.Errorf("oldest position of room %d: %w", roomNID, err)
	}
	return n.Int64, nil
}

// PlaceOutlier gives an outlier found in a room's history (backfilled)
// its state and timeline position: it is an outlier no more.
func (s *Store) PlaceOutlier(ctx context.Context, tx *sql.Tx, e Event) error {
	if _, err := tx.ExecContext(ctx, `UPDATE roomserver_events SET outlier = FALSE, state_before_nid = $1, state_after_nid = $2,
		rejected = $3, backfill_pos = $4 WHERE event_nid = $5`,
		e.StateBeforeNID, e.StateAfterNID, e.Rejected, nullZero(e.BackfillPos), e.NID); err != nil {
		return fmt.Errorf("place outlier %s in the timeline: %w", e.EventID, err)
	}
	return nil
}

// PendingRedaction is an accepted redaction of an event this server did
// not have: it applies to the event when it comes.
type PendingRedaction struct {
	TargetID, RedactionID string
	RoomNID               int64
	Sender                string
}

// AddPendingRedaction keeps r until its target comes.
func (s *Store) AddPendingRedaction(ctx context.Context, tx *sql.Tx, r PendingRedaction) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO roomserver_pending_redactions (target_id, redaction_id, room_nid, sender)
		VALUES ($1, $2, $3, $4) ON CONFLICT (target_id, redaction_id) DO NOTHING`, r.TargetID, r.RedactionID, r.RoomNID, r.Sender); err != nil {
		return fmt.Errorf("keep the redaction of %s for later: %w", r.TargetID, err)
	}
	return nil
}

// TakePendingRedactions returns the redactions kept for targetID and
// forgets them.
func (s *Store) TakePendingRedactions(ctx context.Context, tx *sql.Tx, targetID string) ([]PendingRedaction, error) {
	rows, err := tx.QueryContext(ctx, `SELECT redaction_id, room_nid, sender FROM roomserver_pending_redactions WHERE target_id = $1`, targetID)
	if err != nil {
		return nil, fmt.Errorf("redactions kept for %s: %w", targetID, err)
	}
	defer rows.Close()
	var out []PendingRedaction
	for rows.Next() {
		r := PendingRedaction{TargetID: targetID}
		if err := rows.Scan(&r.RedactionID, &r.RoomNID, &r.Sender); err != nil {
			return nil, fmt.Errorf("scan a redaction kept for %s: %w", targetID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("redactions kept for %s: %w", targetID, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM roomserver_pending_redactions WHERE target_id = $1`, targetID); err != nil {
		return nil, fmt.Errorf("forget the redactions kept for %s: %w", targetID, err)
	}
	return out, nil
}
