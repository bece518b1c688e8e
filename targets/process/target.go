// Package process is the default target: every instance is a local process,
// started detached in its own session, with its record and its log in a
// directory of its own under Options.Dir:
//
//	Dir/<id>/instance.json   labels, command, artifact digest, pid, process
//	                         start time, ports, stop grace, boot id (written
//	                         atomically; a cache of what the process's own
//	                         environment says)
//	Dir/<id>/intent.json     the same before the process started
//	Dir/<id>/log             the process's stdout and stderr, appended
//	                         (rotated into log.1 past Options.LogMaxSize)
//	Dir/.logs/<id>/          the log of a retired instance, kept for
//	                         Options.KeepLogs (see "Instance logs" in logs.go)
//
// What an instance runs is pinned by content. Resolve hashes the
// executable the service's command names (SHA-256) when the plan is made,
// and the reconciler mixes the digest into the spec hash, so a binary
// rebuilt at the same path is a new generation. Provision copies that
// executable into a content-addressed store and runs the copy:
//
//	Artifacts/sha256/<digest>   read-only (0555), written atomically
//
// so every instance of a generation runs the same bytes, whatever is at
// the command's path later, and an instance keeps running its own bytes.
// A store file goes once no instance record names it (Retire prunes the
// store; so does PruneArtifacts).
//
// Instances outlive molt, and are read back from the machine: every
// instance is a session leader whose environment carries its labels and
// this Target's Dir (see "Labels in the environment" in labels.go), so
// List finds it in /proc with or without its record, and the instance
// directories are a cache (a record found missing is written back). A pid
// alone is never trusted: a recorded instance is running only while a
// process with its pid, its recorded start time and the recorded boot id
// exists, and a process found in /proc is an instance only if its own
// environment names this Dir, so a reused pid is neither reported as the
// instance nor ever signalled. Provision stages an instance under a lock
// with its intent written first; what a crash leaves staged is adopted or
// removed by the next List (see sweep.go). Retire ends the instance's
// whole process group, also once its leader is gone.
//
// Instances are hermetic: a process sees PATH and HOME from molt's
// environment and nothing else of it, plus the service's env, PORT_<NAME>
// for every named port, PORT, and molt's labels: MOLT_INSTANCE, MOLT_FLEET,
// MOLT_SERVICE, MOLT_REVISION, MOLT_SPEC_HASH, MOLT_CREATED_AT,
// MOLT_TARGET_DIR, MOLT_HOST, MOLT_PORTS, MOLT_STOP_GRACE, MOLT_ARTIFACT.
// argv[0] is the command's first word as written; the executable
// (/proc/self/exe) is the store file.
//
// The package deliberately does not restart, supervise, sandbox or limit its
// processes (molt replaces dead instances by provisioning new ones), does
// not health-check them, and never touches a directory or process it did
// not create: an entry of Dir without a valid instance.json is skipped.
// It pins the executable only: files the program reads or runs itself
// (shared libraries, an interpreter's script given as an argument, its
// data) are whatever they are at run time. It keeps no artifact that no
// instance uses (a rollback to a generation whose instances are all gone
// copies its executable again, if the file at the path still has its
// digest). Provision and prune are serialised within one Target; two
// Targets over one store must not run at once (molt's state directory
// lock sees to that). It needs Linux (/proc, pidfd); New fails elsewhere.
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

var (
	_ targets.Target       = (*Target)(nil)
	_ targets.BatchRetirer = (*Target)(nil)
)

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
	// Artifacts is the content-addressed store of the executables that
	// instances run, typically STATE/artifacts; it must not be Dir. Default
	// the directory "artifacts" beside Dir. It is created on the first
	// Provision, and must allow executing its files (no noexec mount).
	Artifacts string
	// KeepArtifacts is how long an executable stays in the store after
	// the last instance that ran it went, so that a rollback (or a revert)
	// to that generation soon after still runs the very same program, even
	// when the file at its path changed since. Zero means an hour; a
	// negative value prunes at once.
	KeepArtifacts time.Duration
	// LogMaxSize is the size past which an instance's log is rotated
	// (copy-truncate into log.1, see RotateLogs): an instance keeps about
	// twice that. Zero means 10 MiB; a negative value never rotates.
	LogMaxSize int64
	// KeepLogs is how long the log of a retired instance is kept (in
	// Dir/.logs), so that the log of a failed canary can still be read.
	// Zero means an hour; a negative value keeps none.
	KeepLogs time.Duration
}

// Validate reports whether the options can build a Target.
func (o Options) Validate() error {
	if o.Dir == "" {
		return errors.New("process target: Dir is required")
	}
	if o.Host != "" && net.ParseIP(o.Host) == nil {
		return fmt.Errorf("process target: Host %q is not an IP address", o.Host)
	}
	if o.Artifacts != "" && filepath.Clean(o.Artifacts) == filepath.Clean(o.Dir) {
		return errors.New("process target: Artifacts must not be Dir")
	}
	return nil
}

// Target runs instances as local processes. Its methods are safe for
// concurrent use. Dropping or closing a Target never stops an instance.
type Target struct {
	dir       string
	artifacts string
	host      string
	log       *slog.Logger
	bootID    string
	now       func() time.Time
	keep      time.Duration // see Options.KeepArtifacts
	logMax    int64         // see Options.LogMaxSize
	keepLogs  time.Duration // see Options.KeepLogs

	// store is held for reading by a provision from the moment it ensured
	// its artifact until the instance record naming it is in place, and
	// for writing by a prune: no prune sees an artifact about to be used
	// as unused.
	store  sync.RWMutex
	copyMu sync.Mutex // serialises copies into the store

	cacheMu sync.Mutex
	digests map[string]cachedDigest // by absolute path

	mu      sync.Mutex
	closed  bool
	recent  map[int]time.Time  // ports handed out lately, not to hand out again
	reapers map[string]*reaper // children this Target waits for, and instances it watches (exits.go), by id
	exits   map[string]string  // how reaped children ended, by instance id
	notes   exitNotes          // exits not yet reported to WatchExits
	swept   bool               // the first sweep of Dir is done
	// cacheWarned is set once a record found in /proc could not be
	// written back: the warning is given once.
	cacheWarned bool
	wg          sync.WaitGroup // reaper goroutines
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
	artifacts := filepath.Join(filepath.Dir(dir), "artifacts")
	if opts.Artifacts != "" {
		if artifacts, err = filepath.Abs(opts.Artifacts); err != nil {
			return nil, fmt.Errorf("process target: %w", err)
		}
	}
	if artifacts == dir {
		return nil, errors.New("process target: Artifacts must not be Dir")
	}
	return &Target{
		dir:       dir,
		artifacts: artifacts,
		host:      host,
		log:       log.With("target", "process"),
		bootID:    boot,
		now:       time.Now,
		keep:      keepOf(opts.KeepArtifacts),
		logMax:    logMaxOf(opts.LogMaxSize),
		keepLogs:  keepOf(opts.KeepLogs),
		digests:   make(map[string]cachedDigest),
		recent:    make(map[int]time.Time),
		reapers:   make(map[string]*reaper),
		exits:     make(map[string]string),
	}, nil
}

// LogPath is the file that holds the stdout and stderr of instance id
// while it lives (rotated into LogPath(id)+".1"). Retire moves it aside
// for Options.KeepLogs; read it with Logs.
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

func logMaxOf(n int64) int64 {
	if n == 0 {
		return defaultLogMax
	}
	return n
}

func keepOf(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return time.Hour
	case d < 0:
		return 0
	}
	return d
}
