package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/sources/git"
	"github.com/spf13/pflag"
)

// sourceFlags say where the desired state comes from.
type sourceFlags struct {
	repo  string
	ref   string
	path  string
	creds gitCreds
	eval  evalFlags // bounds of loading the fleet (evaluate.go)
}

func (f *sourceFlags) register(fs *pflag.FlagSet, repoDefault string) {
	fs.StringVar(&f.repo, "repo", repoDefault, "Git repository: a local path, file://, https:// or ssh:// URL")
	fs.StringVar(&f.ref, "ref", "", "branch, tag or commit to read (default: the remote's default branch)")
	fs.StringVar(&f.path, "path", ".", "sub-directory of the repository that holds the fleet")
	f.creds.register(fs)
	f.eval.register(fs)
}

// gitOptions are the options of the repository's cache under cacheDir,
// with its credentials.
func (f sourceFlags) gitOptions(cacheDir string, log *slog.Logger) (git.Options, error) {
	url := repoURL(f.repo)
	auth, cred, err := f.creds.auth(url)
	if err != nil {
		return git.Options{}, err
	}
	return git.Options{URL: url, CacheDir: cacheDir, Logger: log, Auth: auth, Credential: cred}, nil
}

// desiredState is one validated snapshot of the repository.
type desiredState struct {
	fleet    *schema.Fleet
	commit   git.Commit
	revision string // as written on instances: "main@sha1:<40 hex>"
	specs    reconciler.SpecSource
}

// labelRevision is the revision written on instances: the ref name and the
// full hash, so that a rollback can read that commit again.
func labelRevision(c git.Commit) string {
	if c.Ref == "" {
		return "sha1:" + c.Hash
	}
	return strings.TrimPrefix(strings.TrimPrefix(c.Ref, "refs/heads/"), "refs/tags/") + "@sha1:" + c.Hash
}

// sha extracts the commit hash from a revision label ("main@sha1:<40>").
func sha(revision string) string {
	if i := strings.LastIndex(revision, "sha1:"); i >= 0 {
		return revision[i+len("sha1:"):]
	}
	return revision
}

// openRepo opens the cache of the repository under cacheDir and fetches
// it. A one-shot command (validate, plan, apply) reads one commit, and
// maybe a few older ones: a cache it creates is fetched shallow, without
// history, and resolveDeep deepens it when a commit is not there; serve,
// opening the same cache, deepens it at its first fetch.
func openRepo(ctx context.Context, f sourceFlags, cacheDir string, log *slog.Logger) (*git.Repo, error) {
	opts, err := f.gitOptions(cacheDir, log)
	if err != nil {
		return nil, err
	}
	opts.Shallow = true
	repo, err := git.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	if _, err := repo.Fetch(ctx); err != nil {
		return nil, err
	}
	return repo, nil
}

// repoURL makes a local repository path absolute, so that the cache (named
// by the URL) is the same from any working directory; URLs pass through.
func repoURL(raw string) string {
	if strings.Contains(raw, "://") || strings.Contains(raw, "@") {
		return raw
	}
	if abs, err := filepath.Abs(raw); err == nil {
		return abs
	}
	return raw
}

// loadDesired fetches the repository, resolves the ref and validates the
// fleet at that commit.
func loadDesired(ctx context.Context, f sourceFlags, cacheDir string, log *slog.Logger) (desiredState, error) {
	ld, err := f.eval.loader(log)
	if err != nil {
		return desiredState{}, err
	}
	repo, err := openRepo(ctx, f, cacheDir, log)
	if err != nil {
		return desiredState{}, err
	}
	return snapshotAt(ctx, ld, repo, f.ref, f.path)
}

// snapshotAt resolves ref in the (fetched) cache and validates the fleet
// at that commit with ld (and so do its specs, for older revisions).
func snapshotAt(ctx context.Context, ld schema.Loader, repo *git.Repo, ref, path string) (desiredState, error) {
	c, err := resolveDeep(ctx, repo, ref)
	if err != nil {
		return desiredState{}, err
	}
	fleet, err := loadCommit(ctx, ld, repo, c, path)
	if err != nil {
		return desiredState{commit: c}, err // (the commit names where it failed)
	}
	specs := func(ctx context.Context, revision string) (*schema.Fleet, error) {
		if !strings.Contains(revision, "sha1:") {
			return nil, fmt.Errorf("revision %q names no commit", revision)
		}
		old, err := resolveDeep(ctx, repo, sha(revision))
		if err != nil {
			return nil, err
		}
		return loadCommit(ctx, ld, repo, old, path)
	}
	return desiredState{fleet: fleet, commit: c, revision: labelRevision(c), specs: specs}, nil
}

// resolveDeep resolves ref in the cache and, when it is not there and
// repo was opened shallow (openRepo) on a shallow cache, deepens the cache
// and tries again: a hash may name a commit of the history a shallow
// fetch left out. Any other Repo (status reads the cache without a
// fetch) resolves from the cache only.
func resolveDeep(ctx context.Context, repo *git.Repo, ref string) (git.Commit, error) {
	c, err := repo.Resolve(ctx, ref)
	if !errors.Is(err, git.ErrRefNotFound) {
		return c, err
	}
	if err := repo.Deepen(ctx); err != nil {
		return git.Commit{}, fmt.Errorf("resolve %q in the whole history: %w", ref, err)
	}
	return repo.Resolve(ctx, ref)
}

// loadCommit loads the fleet at path of commit c with ld. The commit's
// tree is the only file system: a symlink blob is never followed.
func loadCommit(ctx context.Context, ld schema.Loader, repo *git.Repo, c git.Commit, path string) (*schema.Fleet, error) {
	fsys, err := repo.Snapshot(ctx, c, path)
	if err != nil {
		return nil, err
	}
	return ld.LoadContext(ctx, fsys, ".")
}

// stateDirDefault is where molt keeps its state when --state-dir is not
// given: $MOLT_STATE_DIR, else .molt in the working directory.
func stateDirDefault() string {
	if v := os.Getenv("MOLT_STATE_DIR"); v != "" {
		return v
	}
	return ".molt"
}
