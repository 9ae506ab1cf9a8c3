package push

// A temporary consumer of the roomserver's output, until the sync
// consumer calls Processor.ProcessEvent itself (in stream order, before
// waking clients). Delete this file, and Deps.Bus, then.

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// consumerName is the durable consumer of the output stream.
const consumerName = "homeserver_push"

// consumeOutput has proc process every roomserver output event, in stream
// order, one at a time; a failure is redelivered (ProcessEvent is
// idempotent).
func consumeOutput(ctx context.Context, b *bus.Bus, proc *Processor, log *logrus.Entry) (stop func(), err error) {
	stop, err = b.Consume(context.WithoutCancel(ctx), bus.StreamRoomserverOutput, consumerName, bus.SubjectRoomserverOutput+".*",
		func(ctx context.Context, msg bus.Message) error {
			var out rsapi.OutputEvent
			if err := msg.Decode(&out); err != nil {
				return err
			}
			if err := proc.ProcessEvent(ctx, out); err != nil {
				log.WithError(err).WithField(httputil.FieldEventID, out.Event.EventID).Warn("push: process event")
				return err
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("consume roomserver output for push: %w", err)
	}
	return stop, nil
}
