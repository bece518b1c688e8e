package docker_test

import (
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
	"github.com/molt-dev/molt/targets/docker/dockertest"
	"github.com/molt-dev/molt/targets/targetstest"
)

func TestConformance(t *testing.T) {
	e := setup(t)
	targetstest.Run(t, func(t *testing.T) targetstest.Harness {
		opts := docker.Options{}
		return targetstest.Harness{
			Target: newTarget(t, opts),
			Service: func(t *testing.T, env map[string]string) *schema.Service {
				return service("hello", e.ref, env)
			},
			Kill: func(t *testing.T, inst targets.Instance) {
				dockertest.Kill(t, e.api, dockertest.ContainerID(t, inst.ID))
			},
			Reopen: func(t *testing.T) targets.Target { return newTarget(t, opts) },
			Foreign: map[string]func(t *testing.T) (string, func(t *testing.T)){
				"container": func(t *testing.T) (string, func(t *testing.T)) {
					id, untouched := dockertest.Foreign(t, e.api, e.ref)
					return "local/" + id[:12], func(t *testing.T) { untouched(t) }
				},
			},
			Timeout: 20 * time.Second,
		}
	})
}
