// Package process is the default target: every instance is a local process,
// started detached in its own session, with its record and its log in a
// directory of its own under Options.Dir:
//
//	Dir/<id>/instance.json   labels, command, pid, process start time, ports,
//	                         stop grace, boot id (written atomically)
//	Dir/<id>/log             the process's stdout and stderr, appended
//
// Instances outlive molt: the instance directories are the only record, and
// a new Target over the same Dir (after a restart) lists the same instances.
// A pid alone is never trusted: an instance is running only while a process
// with its pid, its recorded start time and the recorded boot id exists, so
// a reused pid is neither reported as the instance nor ever signalled.
//
// Instances are hermetic: a process sees PATH and HOME from molt's
// environment and nothing else of it, plus the service's env, PORT_<NAME>
// for every named port, PORT, and MOLT_INSTANCE, MOLT_FLEET, MOLT_SERVICE,
// MOLT_REVISION.
//
// The package deliberately does not restart, supervise, sandbox or limit its
// processes (molt replaces dead instances by provisioning new ones), does
// not health-check them, and never touches a directory or process it did
// not create: an entry of Dir without a valid instance.json is skipped.
// It needs Linux (/proc, pidfd); New fails elsewhere.
package process

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/molt-dev/molt/targets"
)

var _ targets.Target = (*Target)(nil)

// Options configure a Target.
type Options struct {
	// Dir holds one directory per instance, typically STATE/instances.
	// Required. It is created on the first Provision.
	Dir string
	// Logger receives provision and retire events and warnings about
	// entries of Dir it skips. Nil discards them.
	Logger *slog.Logger
	// Host is the loopback address on which ports are assigned and which
	// endpoints name; the instance must listen on it. Default 127.0.0.1.
	Host string
}

// Validate reports whether the options can build a Target.
func (o Options) Validate() error {
	if o.Dir == "" {
		return errors.New("process target: Dir is required")
	}
	if o.Host != "" && net.ParseIP(o.Host) == nil {
		return fmt.Errorf("process target: Host %q is not an IP address", o.Host)
	}
	return nil
}

// Target runs instances as local processes. Its methods are safe for
// concurrent use. Dropping or closing a Target never stops an instance.
type Target struct {
	dir    string
	host   string
	log    *slog.Logger
	bootID string

	mu      sync.Mutex
	closed  bool
	recent  map[int]time.Time  // ports handed out lately, not to hand out again
	reapers map[string]*reaper // children this Target waits for, by instance id
	exits   map[string]string  // how reaped children ended, by instance id
	wg      sync.WaitGroup     // reaper goroutines
}

// New returns a Target over opts.Dir. It starts nothing and creates nothing.
func New(opts Options) (*Target, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("process target: %w", err)
	}
	boot, err := bootID()
	if err != nil {
		return nil, fmt.Errorf("process target: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return &Target{
		dir:     dir,
		host:    host,
		log:     log.With("target", "process"),
		bootID:  boot,
		recent:  make(map[int]time.Time),
		reapers: make(map[string]*reaper),
		exits:   make(map[string]string),
	}, nil
}

// LogPath is the file that holds the stdout and stderr of instance id. It
// goes away with the instance when the instance is retired.
func (t *Target) LogPath(id string) string {
	return filepath.Join(t.dir, id, logFile)
}

// Close stops waiting for the processes this Target started; it does not
// stop them (instances outlive molt) and returns once every goroutine of
// the Target has returned. A child that exits after Close stays a zombie
// until molt exits. Provision fails after Close; List and Retire still work.
// Close is idempotent and always returns nil.
func (t *Target) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	rs := t.reapers
	t.reapers = nil
	t.mu.Unlock()
	for _, r := range rs {
		r.halt()
	}
	t.wg.Wait()
	return nil
}

// errClosed is returned by Provision after Close.
var errClosed = errors.New("process target is closed")
