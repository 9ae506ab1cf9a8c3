// Package storage holds the appservices component's tables: the queue of
// events per application service (appservice_queue) and each one's state
// (appservice_state), migration 0015. Each query is written once for both
// engines.
package storage

import (
	"context"
	"database/sql"
	"errors"

	"fmt"
	"strings"
	"time"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Kinds of queued items: the transaction field each goes to.
const (
	KindPDU      = "pdu"
	KindEDU      = "edu"
	KindToDevice = "to_device"
	// KindDeviceList is a user whose devices changed (MSC3202); its body
	// is the user id.
	KindDeviceList = "device_list"
	// KindKeyCounts is a device's key counts (MSC3202); its body is the
	// EDU that carried them.
	KindKeyCounts = "key_counts"
)

// Item is one queued event.
type Item struct {
	Kind string
	Body string
}

// Txn is a transaction to send: its id and its events, in queue order.
type Txn struct {
	ID    int64
	Items []Item
}

// State is an application service's queue as the admin sees it.
type State struct {
	AppServiceID string
	// Pending counts queued events not yet accepted by the bridge.
	Pending int64
	// PendingTxn is the transaction being sent (0: none).
	PendingTxn    int64
	LastSuccessTS int64
	LastError     string
	LastErrorTS   int64
	// CreatedTS is when the server first saw the registration.
	CreatedTS int64
}

// Store is the appservices component's database.
type Store struct {
	db  *storage.DB
	now func() time.Time
}

// New returns a store on db (already migrated).
func New(db *storage.DB) *Store { return &Store{db: db, now: time.Now} }

// Ensure creates the state row of id if it has none and returns its
// creation time (ms) and the last queued stream sequence.
func (s *Store) Ensure(ctx context.Context, id string) (createdTS int64, lastSeq int64, err error) {
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO appservice_state (appservice_id, created_ts) VALUES ($1, $2)
			ON CONFLICT (appservice_id) DO NOTHING`, id, s.now().UnixMilli()); err != nil {
			return fmt.Errorf("create appservice state: %w", err)
		}
		return tx.QueryRowContext(ctx, `SELECT created_ts, last_seq FROM appservice_state WHERE appservice_id = $1`, id).
			Scan(&createdTS, &lastSeq)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("ensure appservice %s: %w", id, err)
	}
	return createdTS, lastSeq, nil
}

// Enqueue appends items to id's queue and records lastSeq, the stream
// sequence they came up to, in one transaction. Items may be empty (the
// sequence still moves on).
func (s *Store) Enqueue(ctx context.Context, id string, lastSeq int64, items []Item) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for _, it := range items {
			if _, err := tx.ExecContext(ctx, `INSERT INTO appservice_queue (appservice_id, kind, body) VALUES ($1, $2, $3)`,
				id, it.Kind, it.Body); err != nil {
				return fmt.Errorf("queue appservice event: %w", err)
			}
		}
		if lastSeq > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE appservice_state SET last_seq = $1 WHERE appservice_id = $2 AND last_seq < $3`,
				lastSeq, id, lastSeq); err != nil {
				return fmt.Errorf("record appservice position: %w", err)
			}
		}
		return nil
	})
}

// NextTxn returns the transaction to send to id: the one already formed
// and not yet accepted, else a new one of the oldest queued events (at
// most max), with a new id. It returns a Txn with no items when the queue
// is empty.
func (s *Store) NextTxn(ctx context.Context, id string, max int) (Txn, error) {
	var txn Txn
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		txn = Txn{}
		var open sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MIN(txn_id) FROM appservice_queue WHERE appservice_id = $1 AND txn_id > 0`, id).
			Scan(&open); err != nil {
			return fmt.Errorf("find open transaction: %w", err)
		}
		if open.Valid {
			txn.ID = open.Int64
			return s.loadTxn(ctx, tx, id, &txn)
		}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM appservice_queue WHERE appservice_id = $1 AND txn_id = 0 ORDER BY id LIMIT $2`, id, max)
		if err != nil {
			return fmt.Errorf("list queued events: %w", err)
		}
		var last int64
		n := 0
		for rows.Next() {
			if err := rows.Scan(&last); err != nil {
				rows.Close()
				return fmt.Errorf("scan queued event: %w", err)
			}
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list queued events: %w", err)
		}
		if n == 0 {
			return nil
		}
		if err := tx.QueryRowContext(ctx, `UPDATE appservice_state SET next_txn_id = next_txn_id + 1 WHERE appservice_id = $1
			RETURNING next_txn_id - 1`, id).Scan(&txn.ID); err != nil {
			return fmt.Errorf("take transaction id: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE appservice_queue SET txn_id = $1 WHERE appservice_id = $2 AND txn_id = 0 AND id <= $3`,
			txn.ID, id, last); err != nil {
			return fmt.Errorf("form transaction: %w", err)
		}
		return s.loadTxn(ctx, tx, id, &txn)
	})
	if err != nil {
		return Txn{}, fmt.Errorf("next transaction of %s: %w", id, err)
	}
	return txn, nil
}

func (s *Store) loadTxn(ctx context.Context, tx *sql.Tx, id string, txn *Txn) error {
	rows, err := tx.QueryContext(ctx, `SELECT kind, body FROM appservice_queue WHERE appservice_id = $1 AND txn_id = $2 ORDER BY id`, id, txn.ID)
	if err != nil {
		return fmt.Errorf("load transaction: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var it Item
		if err := rows.Scan(&it.Kind, &it.Body); err != nil {
			return fmt.Errorf("scan transaction event: %w", err)
		}
		txn.Items = append(txn.Items, it)
	}
	return rows.Err()
}

// Sent deletes the transaction txnID of id, which the bridge accepted,
// and records the success.
func (s *Store) Sent(ctx context.Context, id string, txnID int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM appservice_queue WHERE appservice_id = $1 AND txn_id = $2`, id, txnID); err != nil {
			return fmt.Errorf("delete sent transaction: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE appservice_state SET last_success_ts = $1 WHERE appservice_id = $2`,
			s.now().UnixMilli(), id); err != nil {
			return fmt.Errorf("record success: %w", err)
		}
		return nil
	})
}

// Failed records why the last attempt to send to id failed.
func (s *Store) Failed(ctx context.Context, id, reason string) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE appservice_state SET last_error = $1, last_error_ts = $2 WHERE appservice_id = $3`,
			strings.ToValidUTF8(reason, "?"), s.now().UnixMilli(), id)
		if err != nil {
			return fmt.Errorf("record failure: %w", err)
		}
		return nil
	})
}

// ErrNoState is QueueState's error for an application service the
// server never started.
var ErrNoState = errors.New("no queue state")

// QueueState returns the state of id's queue, or ErrNoState.
func (s *Store) QueueState(ctx context.Context, id string) (State, error) {
	st := State{AppServiceID: id}
	err := s.db.Read().QueryRowContext(ctx, `SELECT created_ts, last_success_ts, last_error, last_error_ts FROM appservice_state
		WHERE appservice_id = $1`, id).Scan(&st.CreatedTS, &st.LastSuccessTS, &st.LastError, &st.LastErrorTS)
	if errors.Is(err, sql.ErrNoRows) {
		return State{}, ErrNoState
	}
	if err != nil {
		return State{}, fmt.Errorf("load appservice state: %w", err)
	}
	var open sql.NullInt64
	if err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*), MIN(NULLIF(txn_id, 0)) FROM appservice_queue WHERE appservice_id = $1`, id).
		Scan(&st.Pending, &open); err != nil {
		return State{}, fmt.Errorf("count queued events: %w", err)
	}
	st.PendingTxn = open.Int64
	return st, nil
}
