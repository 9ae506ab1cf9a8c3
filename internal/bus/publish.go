package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPublishTimeout bounds Publish when ctx has no deadline.
const DefaultPublishTimeout = 10 * time.Second

// Publish stores v, encoded as JSON, on the stream that holds subject (a
// relative subject such as Subject(SubjectRoomserverOutput, partition)) and
// returns once JetStream acknowledged it: a nil error means the message is
// stored. msgID (the event id, or another id unique to the message) makes a
// retry within the stream's duplicate window a no-op; an empty msgID turns
// deduplication off.
func (b *Bus) Publish(ctx context.Context, subject string, msgID string, v any) error {
	if err := validSubject(subject); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("publish on %s: encode: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPublishTimeout)
		defer cancel()
	}
	msg := nats.NewMsg(b.subject(subject))
	msg.Data = data
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish on %s: %w", subject, err)
	}
	return nil
}
