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
	_, err := b.PublishAck(ctx, subject, msgID, v)
	return err
}

// Stored is where JetStream stored a published message.
type Stored struct {
	// Sequence is the message's position in its stream.
	Sequence uint64
	// Duplicate: a message with the same id was already stored (at
	// Sequence) within the duplicate window; this one was dropped.
	Duplicate bool
}

// PublishAck is Publish returning where the message was stored.
func (b *Bus) PublishAck(ctx context.Context, subject string, msgID string, v any) (Stored, error) {
	if err := validSubject(subject); err != nil {
		return Stored{}, fmt.Errorf("publish: %w", err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return Stored{}, fmt.Errorf("publish on %s: encode: %w", subject, err)
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
	ack, err := b.js.PublishMsg(ctx, msg)
	if err != nil {
		return Stored{}, fmt.Errorf("publish on %s: %w", subject, err)
	}
	return Stored{Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}
