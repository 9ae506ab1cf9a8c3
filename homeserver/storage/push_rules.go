package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
)

// ErrPushRuleAnchor: the rule named by before or after is not one of the
// user's rules of that kind.
var ErrPushRuleAnchor = errors.New("before/after rule not found")

// StoredPushRule is a rule a user defined, as stored: the rule's JSON
// (conditions, pattern, actions; its id and enabled flag are columns).
type StoredPushRule struct {
	Kind    string
	RuleID  string
	Enabled bool
	Rule    json.RawMessage
}

// PushRuleOverride is a user's change to a server-default rule: Enabled
// and Actions are nil where the default stands.
type PushRuleOverride struct {
	RuleID  string
	Enabled *bool
	Actions json.RawMessage
}

// PushRules returns userID's own rules, each kind's in evaluation order
// (highest priority first), and its overrides of the server-default
// rules.
func (s *Store) PushRules(ctx context.Context, userID string) ([]StoredPushRule, []PushRuleOverride, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT kind, rule_id, enabled, rule FROM push_rules
		WHERE user_id = $1 ORDER BY kind, priority DESC, rule_id`, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("read push rules: %w", err)
	}
	defer rows.Close()
	var rules []StoredPushRule
	for rows.Next() {
		var r StoredPushRule
		var body string
		if err := rows.Scan(&r.Kind, &r.RuleID, &r.Enabled, &body); err != nil {
			return nil, nil, fmt.Errorf("scan push rule: %w", err)
		}
		r.Rule = json.RawMessage(body)
		rules = append(rules, r)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read push rules: %w", err)
	}
	orows, err := s.db.Read().QueryContext(ctx, `SELECT rule_id, enabled, actions FROM push_rule_overrides WHERE user_id = $1`, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("read push rule overrides: %w", err)
	}
	defer orows.Close()
	var overrides []PushRuleOverride
	for orows.Next() {
		var o PushRuleOverride
		var enabled sql.NullBool
		var actions sql.NullString
		if err := orows.Scan(&o.RuleID, &enabled, &actions); err != nil {
			return nil, nil, fmt.Errorf("scan push rule override: %w", err)
		}
		if enabled.Valid {
			o.Enabled = &enabled.Bool
		}
		if actions.Valid {
			o.Actions = json.RawMessage(actions.String)
		}
		overrides = append(overrides, o)
	}
	if err := orows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read push rule overrides: %w", err)
	}
	return rules, overrides, nil
}

// pushRulesBatch bounds the IN list of one PushRulesOfUsers query.
const pushRulesBatch = 500

// PushRulesOfUsers is PushRules for many users at once (two queries per
// 500 users), for evaluating an event in a big room with a cold cache.
// Users without rules or overrides are absent from both maps.
func (s *Store) PushRulesOfUsers(ctx context.Context, userIDs []string) (map[string][]StoredPushRule, map[string][]PushRuleOverride, error) {
	rules := map[string][]StoredPushRule{}
	overrides := map[string][]PushRuleOverride{}
	for rest := userIDs; len(rest) > 0; {
		batch := rest[:min(len(rest), pushRulesBatch)]
		rest = rest[len(batch):]
		args := make([]any, len(batch))
		for i, u := range batch {
			args[i] = u
		}
		in := dbstorage.Placeholders(1, len(batch))
		rows, err := s.db.Read().QueryContext(ctx, `SELECT user_id, kind, rule_id, enabled, rule FROM push_rules
			WHERE user_id IN (`+in+`) ORDER BY user_id, kind, priority DESC, rule_id`, args...)
		if err != nil {
			return nil, nil, fmt.Errorf("read push rules: %w", err)
		}
		for rows.Next() {
			var u, body string
			var r StoredPushRule
			if err := rows.Scan(&u, &r.Kind, &r.RuleID, &r.Enabled, &body); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("scan push rule: %w", err)
			}
			r.Rule = json.RawMessage(body)
			rules[u] = append(rules[u], r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("read push rules: %w", err)
		}
		orows, err := s.db.Read().QueryContext(ctx, `SELECT user_id, rule_id, enabled, actions FROM push_rule_overrides
			WHERE user_id IN (`+in+`)`, args...)
		if err != nil {
			return nil, nil, fmt.Errorf("read push rule overrides: %w", err)
		}
		for orows.Next() {
			var u string
			var o PushRuleOverride
			var enabled sql.NullBool
			var actions sql.NullString
			if err := orows.Scan(&u, &o.RuleID, &enabled, &actions); err != nil {
				orows.Close()
				return nil, nil, fmt.Errorf("scan push rule override: %w", err)
			}
			if enabled.Valid {
				o.Enabled = &enabled.Bool
			}
			if actions.Valid {
				o.Actions = json.RawMessage(actions.String)
			}
			overrides[u] = append(overrides[u], o)
		}
		err = orows.Err()
		orows.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("read push rule overrides: %w", err)
		}
	}
	return rules, overrides, nil
}

// PutPushRule adds or replaces userID's rule of kind with id ruleID. With
// before (or after), the rule goes just before (after) that rule of the
// same kind, which must exist (ErrPushRuleAnchor); with neither, it goes
// first, as the highest priority rule of its kind (as Synapse does). A
// replaced rule keeps its enabled flag; a new one is enabled.
func (s *Store) PutPushRule(ctx context.Context, userID, kind, ruleID string, rule json.RawMessage, before, after string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		enabled := true
		err := tx.QueryRowContext(ctx, `SELECT enabled FROM push_rules WHERE user_id = $1 AND kind = $2 AND rule_id = $3`,
			userID, kind, ruleID).Scan(&enabled)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read push rule: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM push_rules WHERE user_id = $1 AND kind = $2 AND rule_id = $3`,
			userID, kind, ruleID); err != nil {
			return fmt.Errorf("replace push rule: %w", err)
		}
		var priority int64
		anchor := before
		if anchor == "" {
			anchor = after
		}
		if anchor != "" {
			var ap int64
			err := tx.QueryRowContext(ctx, `SELECT priority FROM push_rules WHERE user_id = $1 AND kind = $2 AND rule_id = $3`,
				userID, kind, anchor).Scan(&ap)
			if errors.Is(err, sql.ErrNoRows) {
				return ErrPushRuleAnchor
			}
			if err != nil {
				return fmt.Errorf("read anchor push rule: %w", err)
			}
			// Make room above the anchor (before: evaluated earlier,
			// higher priority) or at it (after: the anchor moves up).
			from := ap
			if before != "" {
				from = ap + 1
			}
			if _, err := tx.ExecContext(ctx, `UPDATE push_rules SET priority = priority + 1
				WHERE user_id = $1 AND kind = $2 AND priority >= $3`, userID, kind, from); err != nil {
				return fmt.Errorf("shift push rules: %w", err)
			}
			priority = from
		} else {
			var top sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT MAX(priority) FROM push_rules WHERE user_id = $1 AND kind = $2`,
				userID, kind).Scan(&top); err != nil {
				return fmt.Errorf("read push rule priorities: %w", err)
			}
			if top.Valid {
				priority = top.Int64 + 1
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO push_rules (user_id, kind, rule_id, priority, enabled, rule)
			VALUES ($1, $2, $3, $4, $5, $6)`, userID, kind, ruleID, priority, enabled, string(rule)); err != nil {
			return fmt.Errorf("insert push rule: %w", err)
		}
		return nil
	})
}

// UpdatePushRule changes the JSON or the enabled flag (nil: unchanged) of
// userID's existing rule, or returns ErrNotFound.
func (s *Store) UpdatePushRule(ctx context.Context, userID, kind, ruleID string, rule json.RawMessage, enabled *bool) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		switch {
		case rule != nil:
			res, err = tx.ExecContext(ctx, `UPDATE push_rules SET rule = $1 WHERE user_id = $2 AND kind = $3 AND rule_id = $4`,
				string(rule), userID, kind, ruleID)
		case enabled != nil:
			res, err = tx.ExecContext(ctx, `UPDATE push_rules SET enabled = $1 WHERE user_id = $2 AND kind = $3 AND rule_id = $4`,
				*enabled, userID, kind, ruleID)
		default:
			return nil
		}
		if err != nil {
			return fmt.Errorf("update push rule: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// DeletePushRule deletes userID's rule, or returns ErrNotFound.
func (s *Store) DeletePushRule(ctx context.Context, userID, kind, ruleID string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM push_rules WHERE user_id = $1 AND kind = $2 AND rule_id = $3`,
			userID, kind, ruleID)
		if err != nil {
			return fmt.Errorf("delete push rule: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// OverridePushRule records userID's change to a server-default rule:
// enabled and actions, each left as it was when nil.
func (s *Store) OverridePushRule(ctx context.Context, userID, ruleID string, enabled *bool, actions json.RawMessage) error {
	var en sql.NullBool
	if enabled != nil {
		en = sql.NullBool{Bool: *enabled, Valid: true}
	}
	var act sql.NullString
	if actions != nil {
		act = sql.NullString{String: string(actions), Valid: true}
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO push_rule_overrides (user_id, rule_id, enabled, actions)
			VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, rule_id) DO UPDATE SET
			enabled = COALESCE(excluded.enabled, push_rule_overrides.enabled),
			actions = COALESCE(excluded.actions, push_rule_overrides.actions)`,
			userID, ruleID, en, act); err != nil {
			return fmt.Errorf("override push rule: %w", err)
		}
		return nil
	})
}
