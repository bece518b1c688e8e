package git

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// go-git serves file:// remotes by running git-upload-pack. Where Git is
// not installed (molt's image is FROM scratch), local repositories are
// served in process instead, by go-git's own upload-pack over the
// repository's object store. The choice is made once per process, at the
// first Open, because go-git's transports are a process-wide table.
var localTransport sync.Once

// servedInProcess says that useLocalServer installed the in-process
// transport; it is set once, before the first Open goes on.
var servedInProcess bool

// useLocalServer installs the in-process file:// transport when
// git-upload-pack cannot be run.
func useLocalServer() {
	localTransport.Do(func() {
		if _, err := exec.LookPath("git-upload-pack"); err != nil {
			installLocalServer()
			servedInProcess = true
		}
	})
}

// canShallow reports whether the remote can serve a shallow fetch: every
// Git server can, but go-git's in-process upload-pack cannot.
func (r remote) canShallow() bool {
	return !servedInProcess || !strings.HasPrefix(strings.ToLower(r.url), "file:")
}

func installLocalServer() {
	client.InstallProtocol("file", server.NewServer(localLoader{}))
}

// localLoader opens the repository at an endpoint's path: a bare
// repository, or a work tree's .git directory (or the directory a .git
// file names, as a linked work tree or a submodule has; for a linked work
// tree, the common directory, which holds the branches and the objects).
type localLoader struct{}

func (localLoader) Load(ep *transport.Endpoint) (storer.Storer, error) {
	dir := ep.Path
	if !isGitDir(dir) {
		dot := filepath.Join(dir, ".git")
		st, err := os.Stat(dot)
		switch {
		case err != nil:
			return nil, transport.ErrRepositoryNotFound
		case st.IsDir():
			dir = dot
		default:
			b, err := os.ReadFile(dot)
			if err != nil {
				return nil, transport.ErrRepositoryNotFound
			}
			target, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
			if !ok {
				return nil, transport.ErrRepositoryNotFound
			}
			target = strings.TrimSpace(target)
			if !filepath.IsAbs(target) {
				target = filepath.Join(dir, target)
			}
			dir = target
			// A linked work tree keeps its refs and objects in the
			// repository's common directory; serve that.
			if b, err := os.ReadFile(filepath.Join(dir, "commondir")); err == nil {
				common := strings.TrimSpace(string(b))
				if !filepath.IsAbs(common) {
					common = filepath.Join(dir, common)
				}
				dir = common
			}
		}
		if !isGitDir(dir) {
			return nil, transport.ErrRepositoryNotFound
		}
	}
	return filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault()), nil
}

// isGitDir reports whether dir looks like a Git directory: HEAD and
// objects.
func isGitDir(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, "objects"))
	return err == nil && st.IsDir()
}
