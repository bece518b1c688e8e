package git

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/molt-dev/molt/targets/crash"
)

// Names of the refs the cache keeps for the remote.
const (
	branchPrefix  = "refs/heads/"
	tagPrefix     = "refs/tags/"
	trackPrefix   = "refs/remotes/origin/"
	remoteHEADRef = plumbing.ReferenceName("refs/remotes/origin/HEAD")
)

// FetchResult says what a Fetch changed in the cache.
type FetchResult struct {
	// Changed is true when a branch or tag was created, moved or deleted,
	// or the remote's default branch changed.
	Changed bool
	// Updated lists the refs that changed, by their names on the remote
	// ("refs/heads/main", "refs/tags/v1"), sorted by name.
	Updated []RefUpdate
	// Head is the remote's default branch ("main"), or "" when the remote
	// did not say (its HEAD is detached or names no existing branch).
	Head string
}

// RefUpdate is one ref that a Fetch created, moved or deleted.
type RefUpdate struct {
	Name string // the name on the remote, e.g. "refs/heads/main"
	Old  string // full hash before, "" if created
	New  string // full hash after, "" if deleted
}

// Fetch brings the cache up to date with the remote's branches and tags.
// It first asks the remote for its refs (one ref advertisement); when they
// all match the cache it stops there, downloads nothing and reports no
// change. Otherwise it fetches, downloading only the objects the cache
// lacks, replaces force-pushed branches and moved tags, and deletes the
// branches and tags that the remote no longer has. A shallow cache is
// fetched shallow by a Repo opened with Options.Shallow and deepened by
// one without, even when the refs match (see Options.Shallow).
//
// Cancelling ctx aborts the transfer. A failed Fetch leaves the cache
// usable (go-git writes a pack completely before it moves refs): Resolve
// keeps answering from what the cache holds.
func (r *Repo) Fetch(ctx context.Context) (FetchResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetch(ctx)
}

// fetch is Fetch with the lock held.
func (r *Repo) fetch(ctx context.Context) (FetchResult, error) {
	if r.store == nil {
		return FetchResult{}, errClosed
	}

	rem := gogit.NewRemote(r.store, &config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{r.remote.url},
		Fetch: refSpecs,
	})
	advertised, err := rem.ListContext(ctx, &gogit.ListOptions{Auth: r.auth})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return FetchResult{}, fmt.Errorf("fetch %s: %w", r.remote.display, ErrEmptyRepository)
	}
	if err != nil {
		return FetchResult{}, r.remote.wrap("fetch", err)
	}
	want, head := wantedRefs(advertised)
	if len(want) == 0 {
		// Refs, but no branch or tag (only e.g. refs/pull/*).
		return FetchResult{}, fmt.Errorf("fetch %s: %w", r.remote.display, ErrEmptyRepository)
	}

	before, err := r.cachedRefs()
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s: %w", r.remote.display, err)
	}
	prevHead, err := r.remoteHead()
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s: %w", r.remote.display, err)
	}
	depth, err := r.fetchDepth(len(before) == 0)
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s: %w", r.remote.display, err)
	}
	res := FetchResult{Head: head}
	fetched := false
	if !maps.Equal(before, want) || depth == infiniteDepth {
		crash.At("fetch.before-update")
		err := rem.FetchContext(ctx, &gogit.FetchOptions{
			RemoteName: remoteName,
			RefSpecs:   refSpecs,
			Depth:      depth,
			Auth:       r.auth,
			Tags:       gogit.NoTags, // the tag refspec brings them all
			Force:      true,
			Prune:      true,
		})
		if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
			_ = r.setRemoteHead(prevHead) // go-git's prune may have removed it
			return FetchResult{}, r.remote.wrap("fetch", err)
		}
		fetched = true
		crash.At("fetch.after-update")
		if depth == infiniteDepth {
			if err := r.unshallow(); err != nil {
				return FetchResult{}, fmt.Errorf("fetch %s: %w", r.remote.display, err)
			}
		}
		after, err := r.cachedRefs()
		if err != nil {
			return FetchResult{}, fmt.Errorf("fetch %s: %w", r.remote.display, err)
		}
		res.Updated = diffRefs(before, after)
		r.startCompact(ctx)
	}

	if fetched || head != prevHead {
		if err := r.setRemoteHead(head); err != nil {
			return FetchResult{}, fmt.Errorf("fetch %s: record remote HEAD: %w", r.remote.display, err)
		}
	}
	res.Changed = len(res.Updated) > 0 || head != prevHead
	if res.Changed {
		r.log.Info("git fetched", "updated", len(res.Updated), "head", head)
	} else {
		r.log.Debug("git remote unchanged")
	}
	return res, nil
}

// wantedRefs maps the advertised refs to the remote names of the branches
// and tags the cache should hold, and finds the default branch.
func wantedRefs(advertised []*plumbing.Reference) (want map[string]plumbing.Hash, head string) {
	want = make(map[string]plumbing.Hash)
	for _, ref := range advertised {
		name := ref.Name().String()
		switch {
		case ref.Name() == plumbing.HEAD:
			if ref.Type() == plumbing.SymbolicReference && strings.HasPrefix(ref.Target().String(), branchPrefix) {
				head = strings.TrimPrefix(ref.Target().String(), branchPrefix)
			}
		case ref.Type() != plumbing.HashReference:
		case strings.HasPrefix(name, branchPrefix), strings.HasPrefix(name, tagPrefix):
			want[name] = ref.Hash()
		}
	}
	if _, ok := want[branchPrefix+head]; !ok {
		head = "" // HEAD names a branch that does not exist (unborn)
	}
	return want, head
}

// cachedRefs returns the cache's branches and tags under their remote
// names: refs/remotes/origin/X is reported as refs/heads/X.
func (r *Repo) cachedRefs() (map[string]plumbing.Hash, error) {
	iter, err := r.store.IterReferences()
	if err != nil {
		return nil, err
	}
	refs := make(map[string]plumbing.Hash)
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference {
			return nil // refs/remotes/origin/HEAD
		}
		name := ref.Name().String()
		switch {
		case strings.HasPrefix(name, trackPrefix):
			refs[branchPrefix+strings.TrimPrefix(name, trackPrefix)] = ref.Hash()
		case strings.HasPrefix(name, tagPrefix):
			refs[name] = ref.Hash()
		}
		return nil
	})
	return refs, err
}

func diffRefs(before, after map[string]plumbing.Hash) []RefUpdate {
	var out []RefUpdate
	for name, old := range before {
		if nu, ok := after[name]; !ok {
			out = append(out, RefUpdate{Name: name, Old: old.String()})
		} else if nu != old {
			out = append(out, RefUpdate{Name: name, Old: old.String(), New: nu.String()})
		}
	}
	for name, nu := range after {
		if _, ok := before[name]; !ok {
			out = append(out, RefUpdate{Name: name, New: nu.String()})
		}
	}
	slices.SortFunc(out, func(a, b RefUpdate) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// remoteHead returns the default branch recorded by the last Fetch, or "".
func (r *Repo) remoteHead() (string, error) {
	ref, err := r.store.Reference(remoteHEADRef)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if ref.Type() != plumbing.SymbolicReference || !strings.HasPrefix(ref.Target().String(), trackPrefix) {
		return "", nil
	}
	return strings.TrimPrefix(ref.Target().String(), trackPrefix), nil
}

// setRemoteHead records the remote's default branch as the symbolic ref
// refs/remotes/origin/HEAD (as git clone does), or removes it when the
// remote has none. go-git's prune deletes it on every fetch (it matches
// refs/remotes/origin/*), so it is written after each one.
func (r *Repo) setRemoteHead(head string) error {
	if head == "" {
		err := r.store.RemoveReference(remoteHEADRef)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return nil
		}
		return err
	}
	target := plumbing.ReferenceName(trackPrefix + head)
	return r.store.SetReference(plumbing.NewSymbolicReference(remoteHEADRef, target))
}
