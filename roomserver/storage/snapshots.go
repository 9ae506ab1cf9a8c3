package storage

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// StateMap is a room state: which event holds each (type, state key).
type StateMap map[StateKeyNIDs]int64

// Snapshot is a snapshot's row.
type Snapshot struct {
	NID       int64
	ParentNID int64
	ChainRows int64
	StateSize int64
}

// InsertSnapshot stores the state newState as a new snapshot derived from
// parent (whose state is parentState; parent.NID 0 for none), as a delta
// or, when the chain of deltas has grown past half the state, in full.
func (s *Store) InsertSnapshot(ctx context.Context, tx *sql.Tx, roomNID int64, parent Snapshot, parentState, newState StateMap) (Snapshot, error) {
	delta := StateMap{}
	if parent.NID != 0 {
		for k, v := range newState {
			if parentState[k] != v {
				delta[k] = v
			}
		}
		for k := range parentState {
			if _, ok := newState[k]; !ok {
				delta[k] = 0 // removed
			}
		}
	}
	snap := Snapshot{ParentNID: parent.NID, ChainRows: parent.ChainRows + int64(len(delta)), StateSize: int64(len(newState))}
	if parent.NID == 0 || snap.ChainRows > max(64, snap.StateSize/2) {
		snap.ParentNID, snap.ChainRows, delta = 0, 0, newState
	}
	err := tx.QueryRowContext(ctx, `INSERT INTO roomserver_state_snapshots (room_nid, parent_nid, chain_rows, state_size)
		VALUES ($1, $2, $3, $4) RETURNING snapshot_nid`, roomNID, snap.ParentNID, snap.ChainRows, snap.StateSize).Scan(&snap.NID)
	if err != nil {
		return Snapshot{}, fmt.Errorf("insert snapshot: %w", err)
	}
	// Many rows per statement: a full copy of a large room's state (or
	// a remote join's) is thousands of rows.
	args := make([]any, 0, 4*min(len(delta), bulkRows))
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO roomserver_snapshot_entries (snapshot_nid, type_nid, state_key_nid, event_nid)
			VALUES `+storage.ValueRows(1, len(args)/4, 4), args...)
		args = args[:0]
		if err != nil {
			return fmt.Errorf("insert snapshot entries: %w", err)
		}
		return nil
	}
	for k, ev := range delta {
		args = append(args, snap.NID, k.TypeNID, k.StateKeyNID, ev)
		if len(args) == 4*bulkRows {
			if err := flush(); err != nil {
				return Snapshot{}, err
			}
		}
	}
	if err := flush(); err != nil {
		return Snapshot{}, err
	}
	return snap, nil
}

// LoadSnapshot reads a snapshot's whole state: the chain of deltas back to
// its full ancestor, in one query, applied oldest first.
func (s *Store) LoadSnapshot(ctx context.Context, snapshotNID int64) (Snapshot, StateMap, error) {
	rows, err := s.db.Read().QueryContext(ctx, `WITH RECURSIVE chain(nid, parent, depth) AS (
			SELECT snapshot_nid, parent_nid, 0 FROM roomserver_state_snapshots WHERE snapshot_nid = $1
			UNION ALL
			SELECT s.snapshot_nid, s.parent_nid, c.depth + 1 FROM roomserver_state_snapshots s JOIN chain c ON s.snapshot_nid = c.parent
		)
		SELECT c.depth, e.type_nid, e.state_key_nid, e.event_nid
		FROM chain c JOIN roomserver_snapshot_entries e ON e.snapshot_nid = c.nid
		ORDER BY c.depth DESC`, snapshotNID)
	if err != nil {
		return Snapshot{}, nil, fmt.Errorf("load snapshot %d: %w", snapshotNID, err)
	}
	defer rows.Close()
	state := StateMap{}
	for rows.Next() {
		var depth, ev int64
		var k StateKeyNIDs
		if err := rows.Scan(&depth, &k.TypeNID, &k.StateKeyNID, &ev); err != nil {
			return Snapshot{}, nil, fmt.Errorf("scan snapshot entry: %w", err)
		}
		if ev == 0 {
			delete(state, k)
		} else {
			state[k] = ev
		}
	}
	if err := rows.Err(); err != nil {
		return Snapshot{}, nil, fmt.Errorf("load snapshot %d: %w", snapshotNID, err)
	}
	snap := Snapshot{NID: snapshotNID}
	if err := s.db.Read().QueryRowContext(ctx, `SELECT parent_nid, chain_rows, state_size FROM roomserver_state_snapshots WHERE snapshot_nid = $1`, snapshotNID).
		Scan(&snap.ParentNID, &snap.ChainRows, &snap.StateSize); err != nil {
		return Snapshot{}, nil, fmt.Errorf("load snapshot %d: %w", snapshotNID, err)
	}
	return snap, state, nil
}
