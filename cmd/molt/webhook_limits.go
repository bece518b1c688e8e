package main

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/molt-dev/molt/sources/github"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
)

// hookLimitFlags are serve's bounds on the webhooks (see github.Limits)
// and on the connections of the server that carries them.
type hookLimitFlags struct {
	maxRequests   int
	maxInflight   int64
	bodyTimeout   time.Duration
	headerTimeout time.Duration
	idleTimeout   time.Duration
}

// maxHeaderBytes bounds a request's headers on serve's listeners (Go's
// default is 1 MB a connection: 200 slow connections could hold 200 MB).
const maxHeaderBytes = 64 << 10

func (h *hookLimitFlags) register(fl *pflag.FlagSet) {
	fl.IntVar(&h.maxRequests, "webhook-max-requests", github.DefaultMaxRequests, "webhook requests read at once; more are answered 503 with Retry-After")
	fl.Int64Var(&h.maxInflight, "webhook-max-inflight", github.DefaultMaxInflight, "body bytes all webhook requests together may hold (reserved as they arrive); past it 503 with Retry-After")
	fl.DurationVar(&h.bodyTimeout, "webhook-body-timeout", github.DefaultBodyTimeout, "longest a webhook body may take to arrive (408 after it)")
	fl.DurationVar(&h.headerTimeout, "webhook-header-timeout", 5*time.Second, "longest a request's headers may take to arrive, on every endpoint")
	fl.DurationVar(&h.idleTimeout, "webhook-idle-timeout", time.Minute, "an idle keep-alive connection is closed after this, on every endpoint")
}

func (h hookLimitFlags) validate() error {
	switch {
	case h.maxRequests <= 0:
		return errors.New("--webhook-max-requests must be positive")
	case h.maxInflight <= 0:
		return errors.New("--webhook-max-inflight must be positive")
	case h.bodyTimeout <= 0:
		return errors.New("--webhook-body-timeout must be positive")
	case h.headerTimeout <= 0:
		return errors.New("--webhook-header-timeout must be positive")
	case h.idleTimeout <= 0:
		return errors.New("--webhook-idle-timeout must be positive")
	}
	return nil
}

// gate returns the gate of every webhook route, its refusals exported as
// molt_webhook_limited_total{reason="requests|bytes|timeout"}.
func (h hookLimitFlags) gate(log *slog.Logger, reg prometheus.Registerer) (*github.Gate, error) {
	g, err := github.NewGate(github.Limits{MaxRequests: h.maxRequests, MaxInflight: h.maxInflight, BodyTimeout: h.bodyTimeout, Logger: log})
	if err != nil {
		return nil, err
	}
	for reason, n := range map[string]func(github.GateCounts) int64{
		"requests": func(c github.GateCounts) int64 { return c.RefusedRequests },
		"bytes":    func(c github.GateCounts) int64 { return c.RefusedBytes },
		"timeout":  func(c github.GateCounts) int64 { return c.TimedOut },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "molt_webhook_limited_total",
			Help:        "Webhook requests refused at serve's webhook limits, by reason: requests (503, --webhook-max-requests at once), bytes (503, --webhook-max-inflight held), timeout (408, --webhook-body-timeout).",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(n(g.Counts())) }))
	}
	return g, nil
}

// server is an HTTP server of serve's with the connection bounds: headers
// within the header timeout and 64 KiB, idle connections closed, and
// every request read within 30 s (the webhooks within their own, shorter,
// body timeout: see github.Gate).
func (h hookLimitFlags) server(handler http.Handler) *http.Server {
	return &http.Server{Handler: handler, ReadHeaderTimeout: h.headerTimeout, ReadTimeout: 30 * time.Second,
		IdleTimeout: h.idleTimeout, MaxHeaderBytes: maxHeaderBytes}
}
