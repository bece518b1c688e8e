package docker_test

import (
	"strings"
	"testing"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/docker"
)

// A secret reaches the container's environment (where the engine keeps
// it, as docker inspect shows: the engine's concern), and none of molt's
// labels holds it or a hash of it: the configuration hash leaves the
// secret variables out, on both sides, so that the container has not
// drifted and the hash does not change with the secret.
func TestSecretEnvNotInLabels(t *testing.T) {
	e := setup(t)
	tgt := newTarget(t, docker.Options{})
	fleet := fleetName()
	svc := service("web", e.ref, map[string]string{"VERSION": "v1"})
	svc.SecretEnv = map[string]schema.Secret{"DB_PASSWORD": {File: "/run/secrets/db"}, "API_KEY": {Env: "API_KEY"}}
	base := spec(t, tgt, fleet, svc, true)
	run := func(secret string) (targets.Instance, string) {
		s := base
		s.SecretEnv = targets.SecretValues{"DB_PASSWORD": secret, "API_KEY": "k-" + secret}
		inst := provision(t, tgt, s)
		waitAnswer(t, inst, "v1")
		c := inspect(t, e.api, inst.ID)
		return inst, c.Config.Labels[docker.LabelConfig]
	}
	one, oneConfig := run("hunter2-one")
	if got := getEnv(t, one, "DB_PASSWORD"); got != "hunter2-one" {
		t.Errorf("the container sees DB_PASSWORD=%q", got)
	}
	if got := getEnv(t, one, "API_KEY"); got != "k-hunter2-one" {
		t.Errorf("the container sees API_KEY=%q", got)
	}
	c := inspect(t, e.api, one.ID)
	for k, v := range c.Config.Labels {
		if strings.Contains(v, "hunter2") {
			t.Errorf("label %s=%q holds the secret", k, v)
		}
	}
	if got := c.Config.Labels[docker.LabelSecretEnv]; got != "API_KEY,DB_PASSWORD" {
		t.Errorf("label %s = %q, want the names API_KEY,DB_PASSWORD", docker.LabelSecretEnv, got)
	}
	if drift, err := tgt.Drift(t.Context(), one); err != nil || drift != "" {
		t.Errorf("Drift = %q, %v; want none", drift, err)
	}
	_, twoConfig := run("hunter2-two")
	if oneConfig != twoConfig {
		t.Errorf("the configuration hash depends on the secret: %s, %s", oneConfig, twoConfig)
	}
}
