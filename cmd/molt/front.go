package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/haproxy"
	"github.com/molt-dev/molt/targets/router"
	"github.com/spf13/pflag"
)

// registerHAProxy adds the --haproxy flag.
func registerHAProxy(fs *pflag.FlagSet, addr *string) {
	fs.StringVar(addr, "haproxy", "",
		"HAProxy's Runtime API, a stats socket of level admin (unix:PATH or tcp:HOST:PORT), for services exposed with expose: haproxy: backend")
}

// openHAProxy returns the HAProxy front of --haproxy (nil without the
// flag); its routes are kept in STATE/haproxy. It does not contact
// HAProxy.
func openHAProxy(addr, stateDir string, o worldOptions) (*haproxy.Front, error) {
	if addr == "" {
		return nil, nil
	}
	h, err := haproxy.New(haproxy.Options{Socket: addr, Dir: filepath.Join(stateDir, "haproxy"), Logger: o.log})
	if err != nil {
		return nil, &usageError{fmt.Errorf("--haproxy: %w", err)}
	}
	return h, nil
}

// trafficFront is the executor's front: each route goes to the front its
// service is exposed through, HAProxy for a route with a HAProxy backend
// and the built-in router for every other one (not exposed ones too, which
// only carry the reconciler's record).
type trafficFront struct {
	router  reconciler.Front
	haproxy *haproxy.Front // nil without --haproxy
}

// Routes returns the fleet's routes of both fronts.
func (t trafficFront) Routes(ctx context.Context, fleet string) ([]targets.Route, error) {
	routes, err := t.router.Routes(ctx, fleet)
	if err != nil || t.haproxy == nil {
		return routes, err
	}
	h, err := t.haproxy.Routes(ctx, fleet)
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	return append(routes, h...), nil
}

// SetRoutes hands each front the fleet's routes it carries: HAProxy first
// (its new servers are in service before the router drops a service that
// moved to it), then the router. A route with a HAProxy backend and no
// --haproxy is refused (targets.ErrInvalidRoutes).
func (t trafficFront) SetRoutes(ctx context.Context, fleet string, routes []targets.Route) error {
	var viaRouter, viaHAProxy []targets.Route
	for _, r := range routes {
		if r.HAProxy == "" {
			viaRouter = append(viaRouter, r)
			continue
		}
		if t.haproxy == nil {
			return fmt.Errorf("%w: service %s is exposed through HAProxy backend %s: molt needs --haproxy ADDR (HAProxy's admin socket)",
				targets.ErrInvalidRoutes, r.Service, r.HAProxy)
		}
		viaHAProxy = append(viaHAProxy, r)
	}
	if t.haproxy != nil {
		if err := t.haproxy.SetRoutes(ctx, fleet, viaHAProxy); err != nil {
			return fmt.Errorf("haproxy: %w", err)
		}
	}
	if viaRouter == nil {
		viaRouter = []targets.Route{}
	}
	return t.router.SetRoutes(ctx, fleet, viaRouter)
}

// Drain waits, in both fronts at once, until nothing is in flight to
// addrs (each front only waits for the addresses it carried).
func (t trafficFront) Drain(ctx context.Context, addrs []string) error {
	if t.haproxy == nil {
		return t.router.Drain(ctx, addrs)
	}
	var wg sync.WaitGroup
	var rerr, herr error
	wg.Go(func() { rerr = t.router.Drain(ctx, addrs) })
	wg.Go(func() {
		if herr = t.haproxy.Drain(ctx, addrs); herr != nil {
			herr = fmt.Errorf("haproxy: %w", herr)
		}
	})
	wg.Wait()
	return errors.Join(rerr, herr)
}

// Counts merges both fronts' counts (a service is in one of them); the
// window starts at the later of their starts.
func (t trafficFront) Counts(ctx context.Context, fleet string, since time.Time) (map[string]map[string]targets.Counts, time.Time, error) {
	out := map[string]map[string]targets.Counts{}
	from := since
	if c, ok := t.router.(reconciler.Counter); ok {
		m, f, err := c.Counts(ctx, fleet, since)
		if err != nil {
			return nil, since, err
		}
		for s, g := range m {
			out[s] = g
		}
		from = f
	}
	if t.haproxy != nil {
		m, f, err := t.haproxy.Counts(ctx, fleet, since)
		if err != nil {
			return nil, since, fmt.Errorf("haproxy: %w", err)
		}
		for s, g := range m {
			out[s] = g
		}
		if f.After(from) {
			from = f
		}
	}
	return out, from, nil
}

// readFront is the front a plan reads: the router's routes when it runs
// (readOnlyFront) and HAProxy's, and their counts; it changes nothing.
func (w *world) readFront() reconciler.Front {
	return readOnlyTraffic{trafficFront{router: readOnlyFront{w.router}, haproxy: w.haproxy}}
}

type readOnlyTraffic struct{ trafficFront }

func (readOnlyTraffic) SetRoutes(context.Context, string, []targets.Route) error {
	return errors.New("read-only")
}

func (readOnlyTraffic) Drain(context.Context, []string) error { return errors.New("read-only") }

var (
	_ reconciler.Front   = trafficFront{}
	_ reconciler.Counter = trafficFront{}
	_ reconciler.Counter = readOnlyTraffic{}
	_ reconciler.Front   = (*router.Client)(nil)
)
