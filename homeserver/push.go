package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/internal/accountdata"
	"github.com/matrix-gouv/homeserver/homeserver/internal/push"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/internal/syncv3"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// The glue between push (homeserver/internal/push) and sync: small
// adapters, so that neither package imports the other.

// pushCounter gives /sync push's unread counts.
type pushCounter struct {
	store   *storage.Store
	pending *streams.PendingActions
}

// UnreadCounts implements syncv3.Counter: from the cache when it has the
// counts, else from the database (the user's receipts, then the actions
// after them), plus the actions not written yet.
func (p pushCounter) UnreadCounts(ctx context.Context, userID, roomID string) (syncv3.Counts, map[string]syncv3.Counts, error) {
	l := p.pending.LookupUnread(userID, roomID)
	written := l.Cached
	if written == nil {
		unthreaded, threads, err := p.store.ReadPositions(ctx, userID, roomID)
		if err != nil {
			return syncv3.Counts{}, nil, err
		}
		_, per, err := p.store.UnreadCountsUpTo(ctx, userID, roomID, unthreaded, threads, l.WrittenUpTo)
		if err != nil {
			return syncv3.Counts{}, nil, err
		}
		written = &streams.UnreadCounts{Read: streams.ReadPositions{Unthreaded: unthreaded, Threads: threads}, PerThread: per}
		p.pending.RememberUnread(userID, roomID, l, *written)
	}
	total, per := l.Total(*written)
	out := make(map[string]syncv3.Counts, len(per))
	for t, c := range per {
		out[t] = syncv3.Counts{Notifications: c.Notifications, Highlights: c.Highlights}
	}
	return syncv3.Counts{Notifications: total.Notifications, Highlights: total.Highlights}, out, nil
}

// pushRulesContent gives /sync the content of m.push_rules.
type pushRulesContent struct{ rules *push.Rules }

// AccountDataContent implements syncv3.PushRules.
func (p pushRulesContent) AccountDataContent(ctx context.Context, userID string) ([]byte, error) {
	return p.rules.AccountDataContent(ctx, userID)
}

// readPositions gives push the users' read receipts.
type readPositions struct{ store *storage.Store }

// ReceiptPositions implements push.ReceiptPositions.
func (r readPositions) ReceiptPositions(ctx context.Context, userID, roomID string) (int64, map[string]int64, error) {
	return r.store.ReadPositions(ctx, userID, roomID)
}

// pushRulesChanged bumps the user's m.push_rules account data when the
// rules change, so that the user's syncs send the new rules (sync puts
// the rules themselves in the content).
type pushRulesChanged struct{ accountData *accountdata.Handlers }

// Changed implements push.AccountDataNotifier.
func (p pushRulesChanged) Changed(ctx context.Context, userID string) error {
	return p.accountData.Put(ctx, userID, "", "m.push_rules", json.RawMessage(`{}`))
}

// ignoredTTL bounds how long an ignore list is used without rereading it:
// changes made through this process are seen at once (accountDataHook),
// changes made through another within ignoredTTL.
const ignoredTTL = time.Minute

// ignoredUsers reads users' m.ignored_user_list for push, cached: push
// asks for every member of a room on every event.
type ignoredUsers struct {
	store *storage.Store

	// mu guards cache.
	mu    sync.Mutex
	cache map[string]ignoredEntry
}

type ignoredEntry struct {
	users  map[string]bool
	loaded time.Time
}

func newIgnoredUsers(store *storage.Store) *ignoredUsers {
	return &ignoredUsers{store: store, cache: map[string]ignoredEntry{}}
}

// IgnoredUsers implements push.IgnoredUsers.
func (u *ignoredUsers) IgnoredUsers(ctx context.Context, userID string) (map[string]bool, error) {
	u.mu.Lock()
	e, ok := u.cache[userID]
	u.mu.Unlock()
	if ok && time.Since(e.loaded) < ignoredTTL {
		return e.users, nil
	}
	users := map[string]bool{}
	raw, err := u.store.GetAccountData(ctx, userID, "", "m.ignored_user_list")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if err == nil {
		var c struct {
			IgnoredUsers map[string]json.RawMessage `json:"ignored_users"`
		}
		_ = json.Unmarshal(raw, &c)
		for id := range c.IgnoredUsers {
			users[id] = true
		}
	}
	u.mu.Lock()
	if len(u.cache) >= 100_000 {
		u.cache = map[string]ignoredEntry{}
	}
	u.cache[userID] = ignoredEntry{users: users, loaded: time.Now()}
	u.mu.Unlock()
	return users, nil
}

// forget drops userID's cached list.
func (u *ignoredUsers) forget(userID string) {
	u.mu.Lock()
	delete(u.cache, userID)
	u.mu.Unlock()
}

// accountDataHook passes account data changes on to sync's notifier,
// and has push reread the user's ignore list.
type accountDataHook struct {
	next    accountdata.Notifier
	ignored *ignoredUsers
}

// OnAccountData implements accountdata.Notifier.
func (h accountDataHook) OnAccountData(userID string, pos int64) {
	h.ignored.forget(userID)
	h.next.OnAccountData(userID, pos)
}
