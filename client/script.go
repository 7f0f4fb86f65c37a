package main

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/client/internal/live"
	"replaydesk/shared/abi"
	"replaydesk/shared/inputscript"
	"replaydesk/shared/wire"
)

// playScript sends a scripted input (--input, the JSON Lines format of
// `server record --input`) as this user's live input, each event at its time
// after the first Welcome: for tests and measurements, two headless
// controllers typing into one session. Events are sent under the newest
// control epoch heard of; refusals are logged by the client.
func playScript(ctx context.Context, c *live.Client, evs []inputscript.Timed, log zerolog.Logger) {
	msgs, stop := c.Subscribe()
	defer stop()
	var epoch uint64
	watch := func(m wire.Message) {
		switch m := m.(type) {
		case *wire.Presence:
			epoch = m.Epoch
		case *wire.ControlGrant:
			epoch = m.Epoch
		case *wire.ControlRevoke:
			epoch = m.Epoch
		case *wire.ControlRelease:
			epoch = m.Epoch
		}
	}
	for {
		if _, ok := c.Welcome(); ok {
			break
		}
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			watch(m)
		case <-time.After(50 * time.Millisecond):
		}
	}
	start := time.Now()
	var seq uint64
	for _, e := range evs {
		for wait := time.Until(start.Add(e.At)); wait > 0; wait = time.Until(start.Add(e.At)) {
			select {
			case <-ctx.Done():
				return
			case m := <-msgs:
				watch(m)
			case <-time.After(wait):
			}
		}
	drain: // the newest epoch before sending
		for {
			select {
			case m := <-msgs:
				watch(m)
			default:
				break drain
			}
		}
		seq++
		ev := e.Ev
		ev.User = 0 // the server stamps the user
		if err := c.Send(ctx, &wire.Input{Seq: seq, Epoch: epoch, Events: []abi.Event{ev}}); err != nil {
			log.Warn().Err(err).Uint64("seq", seq).Msg("scripted input not sent")
		}
	}
	log.Info().Int("events", len(evs)).Msg("input script played")
}
