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
//
// Endpoints:
//
//	GET /            "hello from VERSION\n"
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
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

	srv := &http.Server{
		Handler:           handler(version, os.Getenv("FAIL_HEALTH") == "1"),
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

func handler(version string, failHealth bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
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
