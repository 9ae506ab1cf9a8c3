package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// UIASession is a user-interactive authentication session in progress.
type UIASession struct {
	ID        string
	UserID    string
	Operation string
	// Completed lists the stage types done so far, in order.
	Completed []string
	// Results holds what stages established, e.g. "registration_token".
	Results   map[string]string
	CreatedTS int64
}

// CreateUIASession stores a new session.
func (s *Store) CreateUIASession(ctx context.Context, u UIASession) error {
	completed, results, err := encodeUIA(u)
	if err != nil {
		return err
	}
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		// Sessions live an hour; clear older ones while we are here.
		if _, err := tx.ExecContext(ctx, `DELETE FROM uia_sessions WHERE created_ts < $1`, now-3600_000); err != nil {
			return fmt.Errorf("expire UIA sessions: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO uia_sessions (session_id, user_id, operation, completed, results, created_ts)
			VALUES ($1, $2, $3, $4, $5, $6)`, u.ID, u.UserID, u.Operation, completed, results, now); err != nil {
			return fmt.Errorf("insert UIA session: %w", err)
		}
		return nil
	})
}

// UIASession loads a session younger than an hour, or ErrNotFound.
func (s *Store) UIASession(ctx context.Context, id string) (UIASession, error) {
	u := UIASession{ID: id}
	var completed, results string
	err := s.db.Read().QueryRowContext(ctx, `SELECT user_id, operation, completed, results, created_ts FROM uia_sessions
		WHERE session_id = $1 AND created_ts >= $2`, id, s.nowMS()-3600_000).Scan(&u.UserID, &u.Operation, &completed, &results, &u.CreatedTS)
	if errors.Is(err, sql.ErrNoRows) {
		return UIASession{}, ErrNotFound
	}
	if err != nil {
		return UIASession{}, fmt.Errorf("load UIA session: %w", err)
	}
	if err := json.Unmarshal([]byte(completed), &u.Completed); err != nil {
		return UIASession{}, fmt.Errorf("decode UIA session: %w", err)
	}
	if err := json.Unmarshal([]byte(results), &u.Results); err != nil {
		return UIASession{}, fmt.Errorf("decode UIA session: %w", err)
	}
	return u, nil
}

// UpdateUIASession saves the completed stages and results of a session.
func (s *Store) UpdateUIASession(ctx context.Context, u UIASession) error {
	completed, results, err := encodeUIA(u)
	if err != nil {
		return err
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE uia_sessions SET completed = $1, results = $2 WHERE session_id = $3`, completed, results, u.ID); err != nil {
			return fmt.Errorf("update UIA session: %w", err)
		}
		return nil
	})
}

// DeleteUIASession forgets a finished session, so it cannot be replayed.
func (s *Store) DeleteUIASession(ctx context.Context, id string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM uia_sessions WHERE session_id = $1`, id); err != nil {
			return fmt.Errorf("delete UIA session: %w", err)
		}
		return nil
	})
}

func encodeUIA(u UIASession) (completed, results string, err error) {
	if u.Completed == nil {
		u.Completed = []string{}
	}
	if u.Results == nil {
		u.Results = map[string]string{}
	}
	c, err := json.Marshal(u.Completed)
	if err != nil {
		return "", "", fmt.Errorf("encode UIA session: %w", err)
	}
	r, err := json.Marshal(u.Results)
	if err != nil {
		return "", "", fmt.Errorf("encode UIA session: %w", err)
	}
	return string(c), string(r), nil
}
