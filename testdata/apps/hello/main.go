// Command hello is molt's demo service: a tiny HTTP server, standard library
// only, used by examples and by the target conformance tests. It is not
// meant to be useful on its own and does nothing beyond what those tests
// need.
//
// Environment:
//
//	PORT        port to listen on (falls back to PORT_HTTP)
//	HOST        address to listen on, default 127.0.0.1 (0.0.0.0 in a container)
//	VERSION     reported by GET /, default "dev"
//	FAIL_HEALTH "1" makes GET /healthz answer 503
//	EXIT_AFTER  a duration; the process exits with status 1 after it (crash tests)
//	ERROR_RATE  a fraction from 0 to 1: that share of the requests to GET / answer
//	            500, spread evenly (with 0.25, every 4th request), default 0
//	FAIL_AFTER  a duration; from that long after start, GET / answers 500 to every
//	            request, while /healthz still answers 200 (a bad release that
//	            passes its health check)
//	LATENCY     a duration that GET / waits before answering, default 0
//
// Endpoints:
//
//	GET /            "hello from VERSION\n", or 500 as ERROR_RATE and FAIL_AFTER say
//	GET /healthz     "ok\n", or 503 when FAIL_HEALTH=1
//	GET /slow?ms=N   sends the headers at once, sleeps N ms, then "slow done\n"
//	GET /env?name=X  the value of the environment variable X, 404 if unset
//
// On SIGTERM or SIGINT it stops accepting connections, finishes the requests
// in flight (http.Server.Shutdown) and exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// maxSlow bounds /slow so a typo cannot hold a test for an hour.
const maxSlow = 60 * time.Second

func main() {
	log.SetFlags(0)
	log.SetPrefix("hello: ")
	if err := run(); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func run() error {
	port := os.Getenv("PORT")
	if port == "" {
		port = os.Getenv("PORT_HTTP")
	}
	if port == "" {
		return errors.New("PORT (or PORT_HTTP) is not set")
	}
	host := os.Getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	version := os.Getenv("VERSION")
	if version == "" {
		version = "dev"
	}
	faults, err := faultsFromEnv(time.Now())
	if err != nil {
		return err
	}
	if s := os.Getenv("EXIT_AFTER"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("EXIT_AFTER: %w", err)
		}
		time.AfterFunc(d, func() {
			log.Printf("exiting after %s as asked (EXIT_AFTER)", d)
			os.Exit(1)
		})
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return err
	}
	log.Printf("version %s listening on %s (pid %d)", version, ln.Addr(), os.Getpid())
	if faults.errorRate > 0 || !faults.failFrom.IsZero() || faults.latency > 0 {
		log.Printf("faults as asked: ERROR_RATE=%v FAIL_AFTER=%q LATENCY=%v",
			faults.errorRate, os.Getenv("FAIL_AFTER"), faults.latency)
	}

	srv := &http.Server{
		Handler:           handler(version, os.Getenv("FAIL_HEALTH") == "1", faults),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Print("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), maxSlow+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Print("stopped")
	return nil
}

// faults are the failures that GET / is asked to show.
type faults struct {
	errorRate float64   // share of requests answered 500
	failFrom  time.Time // from then on, every request is answered 500; zero: never
	latency   time.Duration
	served    atomic.Int64 // requests to GET / so far
}

// faultsFromEnv reads ERROR_RATE, FAIL_AFTER and LATENCY for a process
// started at start.
func faultsFromEnv(start time.Time) (*faults, error) {
	f := &faults{}
	if s := os.Getenv("ERROR_RATE"); s != "" {
		rate, err := strconv.ParseFloat(s, 64)
		if err != nil || !(rate >= 0 && rate <= 1) {
			return nil, fmt.Errorf("ERROR_RATE %q: want a fraction from 0 to 1", s)
		}
		f.errorRate = rate
	}
	if s := os.Getenv("FAIL_AFTER"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("FAIL_AFTER %q: want a duration such as 30s", s)
		}
		f.failFrom = start.Add(d)
	}
	if s := os.Getenv("LATENCY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > maxSlow {
			return nil, fmt.Errorf("LATENCY %q: want a duration from 0 to %s", s, maxSlow)
		}
		f.latency = d
	}
	return f, nil
}

// fail reports whether the request to GET / that arrives at now must
// answer 500. With an error rate r, the n-th request fails when
// floor(n*r) grows: n*r requests out of n, evenly spread.
func (f *faults) fail(now time.Time) bool {
	n := f.served.Add(1)
	if !f.failFrom.IsZero() && !now.Before(f.failFrom) {
		return true
	}
	return math.Floor(float64(n)*f.errorRate) > math.Floor(float64(n-1)*f.errorRate)
}

func handler(version string, failHealth bool, f *faults) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if f.latency > 0 {
			select {
			case <-time.After(f.latency):
			case <-r.Context().Done():
				return
			}
		}
		if f.fail(time.Now()) {
			http.Error(w, "failing as asked (ERROR_RATE, FAIL_AFTER)", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "hello from %s\n", version)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if failHealth {
			http.Error(w, "failing as asked (FAIL_HEALTH=1)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		d := time.Duration(ms) * time.Millisecond
		if err != nil || ms < 0 || d > maxSlow {
			http.Error(w, "ms must be a number of milliseconds up to 60000", http.StatusBadRequest)
			return
		}
		// Headers first, so a client knows the request is in flight.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		time.Sleep(d)
		fmt.Fprintln(w, "slow done")
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.URL.Query().Get("name"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, v)
	})
	return mux
}
