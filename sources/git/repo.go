package git

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// remoteName is the name of the one remote of every cache.
const remoteName = "origin"

// refSpecs map the remote's branches to refs/remotes/origin/* and its tags
// to refs/tags/*, both forced: a force-pushed branch or a moved tag
// replaces what the cache had.
var refSpecs = []config.RefSpec{
	"+refs/heads/*:refs/remotes/origin/*",
	"+refs/tags/*:refs/tags/*",
}

// Repo is the bare cache of one remote. Its methods and the file systems
// that Snapshot returns share one lock: they are safe to call from several
// goroutines, but run one at a time (a Fetch in progress holds up reads
// from a Snapshot). A Fetch that leaves too many packs starts a repack in
// the background, which takes the lock only to swap the packs; Close cuts
// it off. Two Repos, in this process or another, must not use the same
// cache directory at the same time.
type Repo struct {
	remote remote
	dir    string
	auth   transport.AuthMethod
	log    *slog.Logger

	mu      sync.Mutex // guards store, which go-git does not, shallow and the repack fields
	store   *filesystem.Storage
	shallow bool // Options.Shallow, until Deepen

	// The repack in the background (compact.go), nil when none runs:
	// repackDone is closed when it has ended, cancelRepack cuts it off.
	repackDone   chan struct{}
	cancelRepack context.CancelFunc
}

// Open opens the bare cache of opts.URL under opts.CacheDir, creating it
// if it does not exist. It does not contact the remote: after Open,
// Resolve and Snapshot see what the last Fetch (maybe by an earlier
// process) left in the cache. A cache that cannot be read (a broken
// config or HEAD, a missing or truncated object) is removed and created
// again empty, and the next Fetch downloads everything.
func Open(ctx context.Context, opts Options) (*Repo, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	useLocalServer()
	rem, _ := parseRemote(opts.URL) // checked by Validate
	rem.cred = opts.Credential
	r := &Repo{
		remote:  rem,
		dir:     filepath.Join(opts.CacheDir, rem.cacheName()),
		auth:    opts.Auth,
		log:     opts.Logger,
		shallow: opts.Shallow && rem.canShallow(),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("url", rem.display)

	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("git cache: %w", err)
	}
	err := r.openCache()
	if errors.Is(err, errNoCache) {
		err = r.initCache()
	} else if err != nil {
		r.log.Warn("git cache unusable, re-creating it", "dir", r.dir, "err", err)
		if err := os.RemoveAll(r.dir); err != nil {
			return nil, fmt.Errorf("git cache: remove %s: %w", r.dir, err)
		}
		err = r.initCache()
	}
	if err != nil {
		return nil, fmt.Errorf("git cache %s: %w", r.dir, err)
	}
	return r, nil
}

// Dir returns the cache directory of this remote.
func (r *Repo) Dir() string { return r.dir }

// URL returns the remote's URL without credentials.
func (r *Repo) URL() string { return r.remote.display }

// errNoCache says that the cache directory does not exist yet.
var errNoCache = errors.New("no cache yet")

// openCache opens an existing cache and checks it. It returns errNoCache
// when there is no cache yet, and another error when the cache is broken.
func (r *Repo) openCache() error {
	if _, err := os.Stat(r.dir); errors.Is(err, os.ErrNotExist) {
		return errNoCache
	}
	st := newStorage(r.dir)
	_, err := gogit.Open(st, nil)
	if err == nil {
		err = checkCache(st, r.remote.display)
	}
	if err == nil && !r.remote.canShallow() {
		// Made by a process that had Git; this one can neither deepen
		// it nor fetch into it.
		if shallow, serr := isShallow(st); serr != nil || shallow {
			err = errors.Join(serr, errors.New("shallow, and the remote is served in process, which cannot deepen it"))
		}
	}
	if err != nil {
		_ = st.Close()
		if errors.Is(err, gogit.ErrRepositoryNotExists) {
			// The directory exists but holds no repository: broken,
			// not missing.
			return errors.New("no repository in the cache directory")
		}
		return err
	}
	r.store = st
	return nil
}

// initCache creates an empty bare cache with the remote configured.
func (r *Repo) initCache() error {
	st := newStorage(r.dir)
	repo, err := gogit.Init(st, nil)
	if err != nil {
		return err
	}
	// The URL in the config is for people who look at the cache: the
	// transport is given the URL from the options, credentials and all.
	if _, err := repo.CreateRemote(&config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{r.remote.display},
		Fetch: refSpecs,
	}); err != nil {
		return err
	}
	r.store = st
	r.log.Info("git cache created", "dir", r.dir)
	return nil
}

// maxOpenPacks is how many pack files a cache keeps open between reads.
const maxOpenPacks = 16

func newStorage(dir string) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(
		osfs.New(dir, osfs.WithBoundOS()),
		cache.NewObjectLRUDefault(),
		filesystem.Options{MaxOpenDescriptors: maxOpenPacks},
	)
}

// errClosed is returned by the methods of a closed Repo.
var errClosed = errors.New("git cache is closed")

// Close cuts off a repack running in the background and waits for it to
// end (the cache stays valid), then releases the pack files the cache
// keeps open. The Repo, and the file systems from Snapshot, must not be
// used afterwards. Closing twice is harmless.
func (r *Repo) Close() error {
	r.mu.Lock()
	st, done, cancel := r.store, r.repackDone, r.cancelRepack
	r.store = nil // no new repack starts, and a running one does not swap
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	if st == nil {
		return nil
	}
	return st.Close()
}
