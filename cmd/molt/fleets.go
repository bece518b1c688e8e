package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// fleetsFile lists the fleets a state directory has deployed, one a line:
// the fleet's name, a tab, and the source it came from (repository and
// path). Process instances live in the state directory itself; containers
// live on engines that other state directories (and other molts) share, so
// `molt down` retires only the containers of the fleets listed here. The
// source is how a rename is told from a second fleet: a fleet whose source
// now yields another name was renamed, and its instances are pruned.
const fleetsFile = "fleets"

type fleetEntry struct{ name, source string }

func readFleets(stateDir string) ([]fleetEntry, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, fleetsFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read fleets: %w", err)
	}
	var out []fleetEntry
	for _, l := range bytes.Split(b, []byte("\n")) {
		name, source, _ := strings.Cut(strings.TrimSpace(string(l)), "\t")
		if name = strings.TrimSpace(name); name != "" && !slices.ContainsFunc(out, func(e fleetEntry) bool { return e.name == name }) {
			out = append(out, fleetEntry{name, strings.TrimSpace(source)})
		}
	}
	return out, nil
}

func writeFleets(stateDir string, es []fleetEntry) error {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s\t%s\n", e.name, e.source)
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(stateDir, "."+fleetsFile+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("record fleet: %w", err)
	}
	return os.Rename(tmp, filepath.Join(stateDir, fleetsFile))
}

// recordFleet records that the state directory deploys the fleet from
// source, and returns the fleets recorded earlier from the same source
// under another name: renamed away, to be pruned.
func recordFleet(stateDir, name, source string) (renamed []string, err error) {
	es, err := readFleets(stateDir)
	if err != nil {
		return nil, err
	}
	found := false
	for i, e := range es {
		switch {
		case e.name == name:
			found = true
			es[i].source = source
		case source != "" && e.source == source:
			renamed = append(renamed, e.name)
		}
	}
	if !found {
		es = append(es, fleetEntry{name, source})
	}
	return renamed, writeFleets(stateDir, es)
}

// forgetFleet drops a fleet from the record (once it has been pruned).
func forgetFleet(stateDir, name string) error {
	es, err := readFleets(stateDir)
	if err != nil {
		return err
	}
	es = slices.DeleteFunc(es, func(e fleetEntry) bool { return e.name == name })
	return writeFleets(stateDir, es)
}

// knownFleets returns the fleets the state directory has deployed.
func knownFleets(stateDir string) ([]string, error) {
	es, err := readFleets(stateDir)
	var names []string
	for _, e := range es {
		names = append(names, e.name)
	}
	return names, err
}

// fleetSource names where a fleet comes from: the repository and the path
// in it.
func fleetSource(repo, path string) string {
	u := repoURL(repo)
	if p, ok := strings.CutPrefix(u, "file://"); ok {
		u = filepath.Clean(p) // a local repository however it is spelled
	}
	return strings.TrimSuffix(u, "/") + "#" + strings.Trim(filepath.ToSlash(filepath.Clean("/"+path)), "/")
}

// pruneRenamed retires every instance and route of fleets that were
// renamed away from the source now deployed, then forgets them; say
// (when not nil) hears what was pruned.
func pruneRenamed(ctx context.Context, w *world, stateDir string, names []string, say func(string)) error {
	x := *w.exec
	x.OnPass, x.Preempt = nil, nil
	for _, name := range names {
		x.Logger.Info("fleet renamed: pruning the old name's instances and routes", "fleet", name)
		res, err := x.Apply(ctx, &schema.Fleet{Name: name, Services: map[string]*schema.Service{}}, "")
		if err != nil {
			return fmt.Errorf("prune renamed fleet %s: %w", name, err)
		}
		if say != nil {
			say(fmt.Sprintf("fleet %s was renamed: retired its %d instance(s) and routes", name, res.Retired))
		}
		if err := w.exec.Revisions.Forget(name); err != nil {
			return err
		}
		if err := forgetFleet(stateDir, name); err != nil {
			return err
		}
	}
	return nil
}

// owned reports whether `molt down` may retire an instance: with --fleet,
// only that fleet's; otherwise every process instance (they live in the
// state directory) and the containers of the fleets this state directory
// deployed.
func owned(in targets.Instance, only string, known []string) bool {
	if only != "" {
		return in.Labels.Fleet == only
	}
	if !strings.Contains(in.ID, "/") {
		return true
	}
	return slices.Contains(known, in.Labels.Fleet)
}
