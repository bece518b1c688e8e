package schema

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadValid(t *testing.T) {
	tests := []struct {
		name    string
		archive string
		dir     string
		want    *Fleet
	}{{
		name: "defaults",
		archive: `
-- fleet.cue --
package fleet

services: web: process: command: ["./app"]
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"web": defaultService("web")}},
	}, {
		name: "no package clause",
		archive: `
-- a.cue --
name: "prod"
-- b.cue --
services: web: process: command: ["./app"]
`,
		want: &Fleet{Name: "prod", Services: map[string]*Service{"web": defaultService("web")}},
	}, {
		name: "named package wins over files without a clause",
		archive: `
-- fleet.cue --
package fleet

services: web: process: command: ["./app"]
-- other.cue --
// No package clause: not part of the fleet.
services: web: replicas: 5
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"web": defaultService("web")}},
	}, {
		name: "port http gets the default health check",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: {http: 0, metrics: 9090}
}
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"web": with(defaultService("web"), func(s *Service) {
			s.Ports = map[string]int{"http": 0, "metrics": 9090}
			s.Health.HTTP = &HTTPCheck{Path: "/healthz", Port: "http", Status: 200}
		})}},
	}, {
		name: "an explicit tcp check replaces the default",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	health: tcp: port: "http"
}
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"web": with(defaultService("web"), func(s *Service) {
			s.Ports = map[string]int{"http": 0}
			s.Health.TCP = &TCPCheck{Port: "http"}
		})}},
	}, {
		name: "http check defaults",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	health: http: path: "/ready"
	liveness: http: {}
}
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"web": with(defaultService("web"), func(s *Service) {
			s.Ports = map[string]int{"http": 0}
			s.Health.HTTP = &HTTPCheck{Path: "/ready", Port: "http", Status: 200}
			l := defaultService("").Health
			l.HTTP = &HTTPCheck{Path: "/healthz", Port: "http", Status: 200}
			s.Liveness = &l
		})}},
	}, {
		name: "canary strategy gets the default canary",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	replicas: 4
	rollout: {strategy: "canary", maxSurge: "25%", maxUnavailable: "0%"}
}
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"web": with(defaultService("web"), func(s *Service) {
			s.Replicas = 4
			s.Rollout.Strategy = CanaryRun
			s.Rollout.MaxSurge = IntOrPercent{Value: 25, Percent: true}
			s.Rollout.MaxUnavailable = IntOrPercent{Value: 0, Percent: true}
			s.Rollout.Canary = &Canary{Count: 1, Weight: 10, Duration: time.Minute, MaxErrorRate: 0.05, Then: Rolling,
				MinRequests: 50, MaxLatencyRatio: 2, OnInsufficientTraffic: "rollback"}
		})}},
	}, {
		name: "docker defaults",
		archive: `
-- fleet.cue --
package fleet

services: db: {
	docker: image: "postgres:17"
	replicas: 0
	stopGrace: "1m30s"
}
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"db": with(defaultService("db"), func(s *Service) {
			s.Process = nil
			s.Docker = &Docker{Image: "postgres:17", ReadOnlyRootfs: true}
			s.Replicas = 0
			s.StopGrace = 90 * time.Second
		})}},
	}, {
		name: "windows, expose and recycle",
		archive: `
-- fleet.cue --
package fleet

deployWindows: [{kind: "deny", schedule: "@weekly", duration: "24h"}]
services: web: {
	process: command: ["./app"]
	ports: http: 0
	expose: listen: "127.0.0.1:8080"
	recycle: {maxAge: "12h", window: "0 3 * * *"}
	deployWindows: [{kind: "allow", schedule: "TZ=UTC 0 9 * * 1-5", duration: "8h"}]
}
services: api: {
	process: command: ["./app"]
	ports: http: 0
	expose: listen: "127.0.0.2:8080"
}
`,
		want: &Fleet{
			Name:          "default",
			DeployWindows: []Window{{Kind: "deny", Schedule: "@weekly", Duration: 24 * time.Hour}},
			Services: map[string]*Service{
				"web": with(defaultService("web"), func(s *Service) {
					s.Ports = map[string]int{"http": 0}
					s.Health.HTTP = &HTTPCheck{Path: "/healthz", Port: "http", Status: 200}
					s.Expose = &Expose{Listen: "127.0.0.1:8080", Port: "http"}
					s.Recycle = &Recycle{MaxAge: 12 * time.Hour, Window: "0 3 * * *"}
					s.DeployWindows = []Window{{Kind: "allow", Schedule: "TZ=UTC 0 9 * * 1-5", Duration: 8 * time.Hour}}
				}),
				"api": with(defaultService("api"), func(s *Service) {
					s.Ports = map[string]int{"http": 0}
					s.Health.HTTP = &HTTPCheck{Path: "/healthz", Port: "http", Status: 200}
					s.Expose = &Expose{Listen: "127.0.0.2:8080", Port: "http"}
				}),
			},
		},
	}, {
		name: "sub-directory, parent files not read",
		dir:  "fleets/prod",
		archive: `
-- fleet.cue --
package fleet

services: web: replicas: 99
-- fleets/fleet.cue --
package fleet

services: web: replicas: 98
-- fleets/prod/fleet.cue --
package fleet

services: web: process: command: ["./app"]
-- fleets/prod/staging/fleet.cue --
package fleet

services: web: replicas: 97
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"web": defaultService("web")}},
	}, {
		name: "module importing its own package",
		archive: `
-- cue.mod/module.cue --
module: "example.com/fleet"
language: version: "v0.12.0"
-- fleet.cue --
package fleet

import "example.com/fleet/base"

services: web: base.#Service & {process: command: ["./app"]}
-- base/base.cue --
package base

#Service: {replicas: 3, ...}
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"web": with(defaultService("web"), func(s *Service) {
			s.Replicas = 3
		})}},
	}, {
		name: "standard library imports work",
		archive: `
-- fleet.cue --
package fleet

import "strings"

services: web: {
	process: command: ["./app"]
	env: NAME: strings.ToUpper("web")
}
`,
		want: &Fleet{Name: "default", Services: map[string]*Service{"web": with(defaultService("web"), func(s *Service) {
			s.Env = map[string]string{"NAME": "WEB"}
		})}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = "."
			}
			got, err := Load(archiveFS(t, tt.archive), dir)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
		})
	}
}
