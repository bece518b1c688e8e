package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/molt-dev/molt/targets"
)

// fleetsFile lists the fleets a state directory has deployed, one name a
// line. Process instances live in the state directory itself; containers
// live on engines that other state directories (and other molts) share, so
// `molt down` retires only the containers of the fleets listed here.
const fleetsFile = "fleets"

// recordFleet adds a fleet name to the state directory's list.
func recordFleet(stateDir, name string) error {
	known, err := knownFleets(stateDir)
	if err != nil {
		return err
	}
	if slices.Contains(known, name) {
		return nil
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(stateDir, fleetsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("record fleet: %w", err)
	}
	if _, err := fmt.Fprintln(f, name); err != nil {
		f.Close()
		return fmt.Errorf("record fleet: %w", err)
	}
	return f.Close()
}

// knownFleets returns the fleets the state directory has deployed.
func knownFleets(stateDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, fleetsFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read fleets: %w", err)
	}
	var names []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		if n := strings.TrimSpace(string(l)); n != "" {
			names = append(names, n)
		}
	}
	return names, nil
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
