package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/accounts"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// Names of the series the sync helpers record.
const (
	seriesInitialSync = "setup.initial_sync"
	// seriesSync holds only the failures of long polls: a poll's length
	// is the server waiting for news, not a latency.
	seriesSync = "sync"
	// counterSyncResponses counts long polls answered.
	counterSyncResponses = "sync.responses"
)

// syncResponse is the part of a /sync response the tool reads.
type syncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events  []syncEvent `json:"events"`
				Limited bool        `json:"limited"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
	ToDevice struct {
		Events []syncEvent `json:"events"`
	} `json:"to_device"`
}

// syncEvent is the part of an event the tool reads.
type syncEvent struct {
	Type    string `json:"type"`
	Sender  string `json:"sender"`
	Content struct {
		Tag string `json:"com.github.matrix-gouv.loadtest.id"`
	} `json:"content"`
}

// doSync sends one GET /sync and returns the raw body. An empty since is
// an initial sync; filter, when set, is a filter ID or inline JSON.
func doSync(ctx context.Context, u *accounts.User, since, filter string, timeout time.Duration) ([]byte, error) {
	q := map[string]string{"timeout": strconv.FormatInt(timeout.Milliseconds(), 10)}
	if since != "" {
		q["since"] = since
	}
	if filter != "" {
		q["filter"] = filter
	}
	raw, err := u.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodGet, URL: u.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, q)})
	return raw, matrix.CheckImplemented(err, capSync)
}

// parseSync decodes a /sync body.
func parseSync(raw []byte) (*syncResponse, error) {
	var r syncResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("read /sync response: %w", err)
	}
	if r.NextBatch == "" {
		return nil, matrix.Unexpectedf("/sync response without next_batch")
	}
	return &r, nil
}

// syncer long-polls /sync for one user, as a client does, and hands each
// response to handle with the time its body had arrived.
type syncer struct {
	u       *accounts.User
	filter  string
	timeout time.Duration
	handle  func(at time.Time, r *syncResponse)
	// since is the next batch token; only the syncer's goroutine uses it.
	since string
}

// initial runs the first sync, which returns the user's whole state and
// the token to poll from, recording its latency in series.
func (s *syncer) initial(ctx context.Context, series *stats.Series) error {
	return matrix.RetryLimited(ctx, func() error {
		start := time.Now()
		raw, err := doSync(ctx, s.u, "", s.filter, 0)
		if err == nil {
			var r *syncResponse
			if r, err = parseSync(raw); err == nil {
				s.since = r.NextBatch
			}
		}
		if err != nil {
			series.Fail(start, matrix.ErrCode(err))
			return fmt.Errorf("initial sync of %s: %w", s.u.UserID, err)
		}
		series.ObserveBytes(start, time.Since(start), int64(len(raw)))
		return nil
	})
}

// run long-polls until ctx ends, counting failures in rec's sync series
// and waiting a second (or what a rate limit asks) after each.
func (s *syncer) run(ctx context.Context, rec *stats.Recorder) {
	failures, responses := rec.Series(seriesSync), rec.Counter(counterSyncResponses)
	for ctx.Err() == nil {
		start := time.Now()
		raw, err := doSync(ctx, s.u, s.since, s.filter, s.timeout)
		at := time.Now()
		var r *syncResponse
		if err == nil {
			r, err = parseSync(raw)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures.Fail(start, matrix.ErrCode(err))
			sleep(ctx, time.Second)
			continue
		}
		responses.Add(start, 1)
		s.since = r.NextBatch
		s.handle(at, r)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// requireSync fails with a *matrix.NotImplementedError, before any
// costly setup, when the server does not serve /sync to u. Other
// failures are left for the scenario to meet and report.
func requireSync(ctx context.Context, u *accounts.User) error {
	_, err := doSync(ctx, u, "", `{"room":{"rooms":[]}}`, 0)
	if matrix.IsNotImplemented(err) {
		return err
	}
	return nil
}
