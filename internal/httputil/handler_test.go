package httputil

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func TestWriteErrorLogLevel(t *testing.T) {
	for _, c := range []struct {
		name     string
		cancel   bool
		err      error
		wantLogs []logrus.Level
	}{
		{"internal error", false, errors.New("disk on fire"), []logrus.Level{logrus.ErrorLevel}},
		{"client went away", true, fmt.Errorf("read inbox: %w", context.Canceled), []logrus.Level{logrus.DebugLevel}},
		{"canceled by the server, client still there", false, fmt.Errorf("query: %w", context.Canceled), []logrus.Level{logrus.ErrorLevel}},
		{"matrix error", true, Errorf(CodeForbidden, "no"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			log, hook := test.NewNullLogger()
			log.SetLevel(logrus.DebugLevel)
			ctx, cancel := context.WithCancel(WithLog(context.Background(), logrus.NewEntry(log)))
			defer cancel()
			if c.cancel {
				cancel()
			}
			r := httptest.NewRequest("GET", "/_matrix/client/v3/sync", nil).WithContext(ctx)
			WriteError(httptest.NewRecorder(), r, c.err)
			var got []logrus.Level
			for _, e := range hook.AllEntries() {
				got = append(got, e.Level)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.wantLogs) {
				t.Fatalf("log levels %v, want %v", got, c.wantLogs)
			}
		})
	}
}
