package git

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
)

// FetchPull fetches the head of pull request n (GitHub keeps it at
// refs/pull/N/head on the base repository, also for pull requests from
// forks) into refs/remotes/origin/pull/N, so that Resolve can find its
// commit. A remote without that ref (not GitHub, or the pull request is
// gone) is not an error: FetchPull reports false, and the commit may still
// have come with a branch.
func (r *Repo) FetchPull(ctx context.Context, n int) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.store == nil {
		return false, errClosed
	}
	src := "refs/pull/" + strconv.Itoa(n) + "/head"
	spec := config.RefSpec("+" + src + ":refs/remotes/origin/pull/" + strconv.Itoa(n))
	rem := gogit.NewRemote(r.store, &config.RemoteConfig{Name: remoteName, URLs: []string{r.remote.url}, Fetch: []config.RefSpec{spec}})
	advertised, err := rem.ListContext(ctx, &gogit.ListOptions{Auth: r.auth})
	if err != nil {
		return false, r.remote.wrap("fetch pull request", err)
	}
	found := false
	for _, ref := range advertised {
		if ref.Name().String() == src {
			found = true
		}
	}
	if !found {
		return false, nil
	}
	// A shallow cache must tell the remote where its history stops, or
	// the remote leaves out what it believes lies behind the tips.
	cached, err := r.cachedRefs()
	if err != nil {
		return false, fmt.Errorf("fetch pull request: %w", err)
	}
	depth, err := r.fetchDepth(len(cached) == 0)
	if err != nil {
		return false, fmt.Errorf("fetch pull request: %w", err)
	}
	err = rem.FetchContext(ctx, &gogit.FetchOptions{RemoteName: remoteName, RefSpecs: []config.RefSpec{spec}, Depth: depth, Auth: r.auth, Tags: gogit.NoTags, Force: true})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return false, r.remote.wrap("fetch pull request", err)
	}
	r.startCompact(ctx)
	return true, nil
}
