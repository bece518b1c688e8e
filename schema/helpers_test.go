package schema

import (
	"errors"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rogpeppe/go-internal/txtar"
)

// archiveFS returns the files of a txtar archive as a file system.
func archiveFS(t *testing.T, archive string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, f := range txtar.Parse([]byte(archive)).Files {
		fsys[f.Name] = &fstest.MapFile{Data: f.Data, Mode: 0o644}
	}
	return fsys
}

// issueStrings returns the issues of an *InvalidError as strings, and
// fails the test for any other error.
func issueStrings(t *testing.T, err error) []string {
	t.Helper()
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("error %v (%T) is not an *InvalidError", err, err)
	}
	var out []string
	for _, is := range inv.Issues {
		out = append(out, is.String())
	}
	return out
}

// defaultService is a service named name running ./app with every
// default of the schema.
func defaultService(name string) *Service {
	return &Service{
		Name:     name,
		Replicas: 1,
		Process:  &Process{Command: []string{"./app"}},
		Env:      map[string]string{},
		Ports:    map[string]int{},
		Health: Health{
			Interval:           2 * time.Second,
			Timeout:            time.Second,
			HealthyThreshold:   1,
			UnhealthyThreshold: 3,
			Grace:              10 * time.Second,
		},
		Rollout: Rollout{
			Strategy:         Rolling,
			MaxSurge:         IntOrPercent{Value: 1},
			MaxUnavailable:   IntOrPercent{Value: 0},
			MinHealthyFor:    0,
			ProgressDeadline: 5 * time.Minute,
			KeepPrevious:     0,
			VerifyFor:        0,
			MaxErrorRate:     0.05,
		},
		StopGrace: 10 * time.Second,
	}
}

// with returns a copy of s changed by edit.
func with(s *Service, edit func(*Service)) *Service {
	c := *s
	edit(&c)
	return &c
}
