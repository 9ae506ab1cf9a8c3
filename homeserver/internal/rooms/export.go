package rooms

import (
	"context"
	"encoding/json"
	"fmt"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// ClientEvents returns evs in the client format dev sees them in (with
// unsigned age, transaction ids and relation aggregations), for the
// packages beside this one that list events: /notifications
// (homeserver/internal/push). Access is the caller's to decide.
func (h *Handlers) ClientEvents(ctx context.Context, dev hsapi.Device, evs []api.Event) ([]json.RawMessage, error) {
	parsed, err := parseEvents(evs)
	if err != nil {
		return nil, err
	}
	f, err := h.newFormatter(ctx, dev, parsed)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, len(parsed))
	for _, ce := range f.formatAll(parsed, nil) {
		b, err := json.Marshal(ce)
		if err != nil {
			return nil, fmt.Errorf("encode client event %s: %w", ce.EventID, err)
		}
		out = append(out, b)
	}
	return out, nil
}
