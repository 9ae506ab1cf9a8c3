package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrAliasExists: the alias is taken.
var ErrAliasExists = errors.New("alias exists")

// Alias is a row of roomserver_aliases, with the room's id.
type Alias struct {
	Alias   string
	RoomID  string
	Creator string
}

// InsertAlias points a new alias at a room; ErrAliasExists when the
// alias is taken, whatever room it points to.
func (s *Store) InsertAlias(ctx context.Context, alias string, roomNID int64, creator string) error {
	var inserted int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		// DO NOTHING rather than a unique violation: a failed statement
		// would abort the whole transaction on PostgreSQL.
		res, err := tx.ExecContext(ctx, `INSERT INTO roomserver_aliases (alias, room_nid, creator, created_ts) VALUES ($1, $2, $3, $4)
			ON CONFLICT (alias) DO NOTHING`, alias, roomNID, creator, time.Now().UnixMilli())
		if err != nil {
			return err
		}
		inserted, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("insert alias: %w", err)
	}
	if inserted == 0 {
		return ErrAliasExists
	}
	return nil
}

// Alias returns an alias's row, or ErrNotFound.
func (s *Store) Alias(ctx context.Context, alias string) (Alias, error) {
	a := Alias{Alias: alias}
	err := s.db.Read().QueryRowContext(ctx, `SELECT r.room_id, a.creator FROM roomserver_aliases a
		JOIN roomserver_rooms r ON r.room_nid = a.room_nid WHERE a.alias = $1`, alias).Scan(&a.RoomID, &a.Creator)
	if errors.Is(err, sql.ErrNoRows) {
		return Alias{}, ErrNotFound
	}
	if err != nil {
		return Alias{}, fmt.Errorf("load alias: %w", err)
	}
	return a, nil
}

// DeleteAlias deletes alias if it still points to roomNID and was made
// by creator; ErrNotFound otherwise.
func (s *Store) DeleteAlias(ctx context.Context, alias string, roomNID int64, creator string) error {
	var deleted int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM roomserver_aliases WHERE alias = $1 AND room_nid = $2 AND creator = $3`,
			alias, roomNID, creator)
		if err != nil {
			return err
		}
		deleted, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("delete alias: %w", err)
	}
	if deleted == 0 {
		return ErrNotFound
	}
	return nil
}

// AliasesOf returns the aliases pointing to a room, sorted.
func (s *Store) AliasesOf(ctx context.Context, roomNID int64) ([]string, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT alias FROM roomserver_aliases WHERE room_nid = $1 ORDER BY alias`, roomNID)
	if err != nil {
		return nil, fmt.Errorf("list aliases: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("scan alias: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list aliases: %w", err)
	}
	return out, nil
}
