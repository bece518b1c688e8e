package router

import (
	"errors"
	"log/slog"
	"time"
)

// DefaultDrainTimeout bounds Drain and the graceful close of listeners when
// Options.DrainTimeout is zero.
const DefaultDrainTimeout = 30 * time.Second

// Options configure a Server.
type Options struct {
	// StateDir is molt's state directory; the router keeps its socket,
	// table, pid and log under STATE/router. Required.
	StateDir string
	// Logger receives the router's logs; nil discards them.
	Logger *slog.Logger
	// DrainTimeout bounds how long Drain waits for in-flight requests and
	// how long a closing listener waits for its requests to finish.
	// Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration

	// keepEvery is how often Run checks its files (DefaultKeepInterval
	// when zero; tests shorten it).
	keepEvery time.Duration

	// clock, if set, replaces time.Now for placing attempts in the
	// windowed counts (tests set it; latency is always measured by the
	// real clock).
	clock func() time.Time
}

// Validate reports whether the options can run a router.
func (o Options) Validate() error {
	if o.StateDir == "" {
		return errors.New("router options: state directory is required")
	}
	if o.DrainTimeout < 0 {
		return errors.New("router options: negative drain timeout")
	}
	if _, err := socketPath(o.StateDir); err != nil {
		return err
	}
	return nil
}

func (o Options) drainTimeout() time.Duration {
	if o.DrainTimeout == 0 {
		return DefaultDrainTimeout
	}
	return o.DrainTimeout
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o Options) keepInterval() time.Duration {
	if o.keepEvery <= 0 {
		return DefaultKeepInterval
	}
	return o.keepEvery
}
