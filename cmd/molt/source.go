package main

import (
	"context"
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
}

func (f *sourceFlags) register(fs *pflag.FlagSet, repoDefault string) {
	fs.StringVar(&f.repo, "repo", repoDefault, "Git repository: a local path, file://, https:// or ssh:// URL")
	fs.StringVar(&f.ref, "ref", "", "branch, tag or commit to read (default: the remote's default branch)")
	fs.StringVar(&f.path, "path", ".", "sub-directory of the repository that holds the fleet")
	f.creds.register(fs)
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

// openRepo opens the cache of the repository under cacheDir and fetches it.
func openRepo(ctx context.Context, f sourceFlags, cacheDir string, log *slog.Logger) (*git.Repo, error) {
	opts, err := f.gitOptions(cacheDir, log)
	if err != nil {
		return nil, err
	}
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
	repo, err := openRepo(ctx, f, cacheDir, log)
	if err != nil {
		return desiredState{}, err
	}
	return snapshotAt(ctx, repo, f.ref, f.path)
}

// snapshotAt resolves ref in the (fetched) cache and validates the fleet
// at that commit.
func snapshotAt(ctx context.Context, repo *git.Repo, ref, path string) (desiredState, error) {
	c, err := repo.Resolve(ctx, ref)
	if err != nil {
		return desiredState{}, err
	}
	fleet, err := loadCommit(ctx, repo, c, path)
	if err != nil {
		return desiredState{}, err
	}
	specs := func(ctx context.Context, revision string) (*schema.Fleet, error) {
		if !strings.Contains(revision, "sha1:") {
			return nil, fmt.Errorf("revision %q names no commit", revision)
		}
		old, err := repo.Resolve(ctx, sha(revision))
		if err != nil {
			return nil, err
		}
		return loadCommit(ctx, repo, old, path)
	}
	return desiredState{fleet: fleet, commit: c, revision: labelRevision(c), specs: specs}, nil
}

func loadCommit(ctx context.Context, repo *git.Repo, c git.Commit, path string) (*schema.Fleet, error) {
	fsys, err := repo.Snapshot(ctx, c, path)
	if err != nil {
		return nil, err
	}
	return schema.Load(fsys, ".")
}

// stateDirDefault is where molt keeps its state when --state-dir is not
// given: $MOLT_STATE_DIR, else .molt in the working directory.
func stateDirDefault() string {
	if v := os.Getenv("MOLT_STATE_DIR"); v != "" {
		return v
	}
	return ".molt"
}
