package haproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/molt-dev/molt/targets"
)

// fleetFile is what the front keeps of one fleet in DIR/<fleet>.json: its
// routes as the reconciler set them (Meta included: HAProxy has no place
// for it), and when molt added each of the fleet's servers.
type fleetFile struct {
	Routes []targets.Route `json:"routes"`
	// Added is when molt added a server ("backend/server"): counters of a
	// server added after a window began all fall in the window.
	Added map[string]time.Time `json:"added,omitempty"`
}

func (f *Front) path(fleet string) string { return filepath.Join(f.opts.Dir, fleet+".json") }

// load reads a fleet's file; a missing one is an empty fleet, and an
// unreadable one is moved aside (and logged) so that the routes are
// rebuilt from the live fleet instead of failing every pass.
func (f *Front) load(fleet string) (fleetFile, error) {
	var ff fleetFile
	p := f.path(fleet)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return ff, nil
	}
	if err != nil {
		return ff, fmt.Errorf("read haproxy routes of fleet %s: %w", fleet, err)
	}
	if err := json.Unmarshal(b, &ff); err != nil {
		aside := p + ".bad-" + f.now().UTC().Format("20060102T150405")
		if rerr := os.Rename(p, aside); rerr != nil {
			return fleetFile{}, fmt.Errorf("read haproxy routes of fleet %s: %w (and cannot move it aside: %w)", fleet, err, rerr)
		}
		f.logger().Warn("unreadable haproxy route file moved aside; the fleet's routes are rebuilt from the live fleet",
			"fleet", fleet, "file", p, "moved-to", aside, "error", err)
		return fleetFile{}, nil
	}
	return ff, nil
}

// save writes a fleet's file atomically (a temporary file renamed over
// it); a fleet with no route has its file removed.
func (f *Front) save(fleet string, ff fleetFile) error {
	p := f.path(fleet)
	if len(ff.Routes) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove haproxy routes of fleet %s: %w", fleet, err)
		}
		return nil
	}
	if err := os.MkdirAll(f.opts.Dir, 0o755); err != nil {
		return fmt.Errorf("haproxy route dir: %w", err)
	}
	b, err := json.MarshalIndent(ff, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(f.opts.Dir, "."+fleet+".*.tmp")
	if err != nil {
		return fmt.Errorf("write haproxy routes of fleet %s: %w", fleet, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write haproxy routes of fleet %s: %w", fleet, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write haproxy routes of fleet %s: %w", fleet, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write haproxy routes of fleet %s: %w", fleet, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("write haproxy routes of fleet %s: %w", fleet, err)
	}
	return nil
}

// claims returns, for every fleet but skip with a file in the directory,
// the HAProxy backends its routes use: backend -> "fleet F, service S".
func (f *Front) claims(skip string) (map[string]string, error) {
	entries, err := os.ReadDir(f.opts.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("haproxy route dir: %w", err)
	}
	out := map[string]string{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") || name == skip || e.IsDir() {
			continue
		}
		ff, err := f.load(name)
		if err != nil {
			return nil, err
		}
		for _, r := range ff.Routes {
			if r.HAProxy != "" {
				out[r.HAProxy] = fmt.Sprintf("fleet %s, service %s", name, r.Service)
			}
		}
	}
	return out, nil
}
