package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/storage/filesystem"
)

// A shallow cache (Options.Shallow) holds the commits at the tips of the
// remote's branches and tags without their history; go-git lists those
// commits in the cache's shallow file, as git does.

// infiniteDepth asks the remote for all the history a shallow cache lacks:
// git fetch --unshallow sends it as the depth.
const infiniteDepth = 1<<31 - 1

// fetchDepth is the depth of the next fetch into the cache (the caller
// holds the lock): 1 for a shallow Repo when the cache is empty (it holds
// no branch or tag) or shallow, infiniteDepth for a whole Repo when the
// cache is shallow, else 0 (everything the cache lacks, as usual).
func (r *Repo) fetchDepth(empty bool) (int, error) {
	shallow, err := isShallow(r.store)
	switch {
	case err != nil:
		return 0, err
	case r.shallow && (empty || shallow):
		return 1, nil
	case !r.shallow && shallow:
		return infiniteDepth, nil
	}
	return 0, nil
}

// isShallow reports whether the cache lacks history.
func isShallow(st *filesystem.Storage) (bool, error) {
	commits, err := st.Shallow()
	return len(commits) > 0, err
}

// unshallow marks the cache whole, after a fetch at infiniteDepth of every
// branch and tag (the caller holds the lock). go-git leaves the shallow
// file as it was; git removes it, and so does this.
func (r *Repo) unshallow() error {
	err := os.Remove(filepath.Join(r.dir, "shallow"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	r.log.Info("git cache deepened: it holds the whole history")
	return nil
}

// Deepen is for a Repo opened with Options.Shallow that needs an older
// commit: when the cache is shallow it fetches, as Fetch does, bringing
// the history the cache lacks along with the remote's latest branches and
// tags, and the Repo fetches whole from then on; Resolve finds the older
// commits after it. A failed Deepen leaves the Repo shallow, and the next
// one tries again. A Repo opened without Shallow is left as it is and
// does not contact the remote (its own next Fetch deepens a shallow
// cache); nor does a Repo whose cache is whole.
func (r *Repo) Deepen(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.store == nil {
		return errClosed
	}
	if !r.shallow {
		return nil
	}
	shallow, err := isShallow(r.store)
	if err != nil {
		return fmt.Errorf("deepen %s: %w", r.remote.display, err)
	}
	r.shallow = false
	if !shallow {
		return nil
	}
	if _, err := r.fetch(ctx); err != nil {
		r.shallow = true
		return err
	}
	return nil
}
