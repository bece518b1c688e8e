package schema

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name    string
		archive string
		dir     string
		loader  Loader
		want    []string
	}{{
		name: "wrong type",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	replicas: "3"
}
`,
		want: []string{`fleet.cue:5:12: services.web.replicas: must be an integer >= 0`},
	}, {
		name: "negative replicas",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	replicas: -1
}
`,
		want: []string{`fleet.cue:5:12: services.web.replicas: must be an integer >= 0`},
	}, {
		name: "unknown top-level field",
		archive: `
-- fleet.cue --
package fleet

services: web: process: command: ["./app"]
servces: api: process: command: ["./app"]
`,
		want: []string{`fleet.cue:4:1: servces: field not allowed`},
	}, {
		name: "misspelled field",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	helth: http: path: "/"
}
`,
		want: []string{`fleet.cue:5:2: services.web.helth: field not allowed`},
	}, {
		name: "misspelled nested field",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	rollout: maxSurges: 2
}
`,
		want: []string{`fleet.cue:5:11: services.web.rollout.maxSurges: field not allowed`},
	}, {
		name: "both process and docker",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	docker: image: "nginx"
}
`,
		want: []string{`fleet.cue:5:2: services.web.docker: set exactly one of process and docker, not both`},
	}, {
		name: "neither process nor docker",
		archive: `
-- fleet.cue --
package fleet

services: web: replicas: 2
`,
		want: []string{`fleet.cue:3:11: services.web: set exactly one of process and docker`},
	}, {
		name: "missing required field",
		archive: `
-- fleet.cue --
package fleet

services: web: docker: user: "nobody"
`,
		want: []string{`fleet.cue:3:16: services.web.docker.image: field is required but not present`},
	}, {
		name: "bad duration",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	stopGrace: "5 minutes"
}
`,
		want: []string{`fleet.cue:5:13: services.web.stopGrace: must be a duration such as "30s", "1m30s" or "2h"`},
	}, {
		name: "duration too long for Go",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	rollout: {strategy: "blue-green", keepPrevious: "9999999999h"}
}
`,
		want: []string{`fleet.cue:5:50: services.web.rollout.keepPrevious: invalid duration "9999999999h"`},
	}, {
		name: "rolling keeps no previous generation",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	rollout: keepPrevious: "10m"
}
`,
		want: []string{`fleet.cue:5:25: services.web.rollout.keepPrevious: keepPrevious (10m) with strategy "rolling": keeping the previous generation warm needs blue-green or canary with then: "blue-green" (rolling keeps at most replicas + maxSurge instances alive)`},
	}, {
		name: "verification longer than the warm generation lives",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	rollout: {strategy: "blue-green", keepPrevious: "1m", verifyFor: "5m"}
}
`,
		want: []string{`fleet.cue:5:67: services.web.rollout.verifyFor: verifyFor (5m) is longer than keepPrevious (1m): the previous generation must stay warm while the new one is verified, to switch back to it`},
	}, {
		name: "bad percent",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	rollout: maxSurge: "150%"
}
`,
		want: []string{`fleet.cue:5:21: services.web.rollout.maxSurge: must be an integer >= 0 or a percentage such as "25%"`},
	}, {
		name: "surge and unavailable both zero",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	replicas: 3
	rollout: {maxSurge: 0, maxUnavailable: "25%"}
}
`,
		want: []string{`fleet.cue:6:22: services.web.rollout.maxSurge: maxSurge (0) and maxUnavailable (25%) both come to 0 for 3 replicas: a rollout could never start`},
	}, {
		name: "minHealthyFor not shorter than progressDeadline",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	rollout: {
		minHealthyFor:    "5m"
		progressDeadline: "5m"
	}
}
`,
		want: []string{`fleet.cue:6:21: services.web.rollout.minHealthyFor: minHealthyFor (5m) must be shorter than progressDeadline (5m)`},
	}, {
		name: "default grace not shorter than progressDeadline",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	rollout: progressDeadline: "10s"
}
`,
		want: []string{`fleet.cue:5:29: services.web.rollout.progressDeadline: health grace (10s) must be shorter than rollout.progressDeadline (10s)`},
	}, {
		name: "health port not declared",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: web: 8080
	health: http: port: "api"
}
`,
		want: []string{`fleet.cue:6:22: services.web.health.http.port: port "api" is not declared in ports`},
	}, {
		name: "default port of a check not declared",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	health: http: path: "/ready"
	liveness: tcp: port: "admin"
	expose: listen: ":8080"
}
`,
		want: []string{
			`fleet.cue:5:10: services.web.health.http.port: port "http" is not declared in ports`,
			`fleet.cue:6:23: services.web.liveness.tcp.port: port "admin" is not declared in ports`,
			`fleet.cue:7:2: services.web.expose.port: port "http" is not declared in ports`,
		},
	}, {
		name: "duplicate listen address",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	expose: listen: ":8080"
}
services: api: {
	process: command: ["./app"]
	ports: http: 0
	expose: listen: ":8080"
}
services: admin: {
	process: command: ["./app"]
	ports: http: 0
	expose: listen: "127.0.0.1:8080"
}
`,
		want: []string{
			`fleet.cue:11:18: services.api.expose.listen: listen address ":8080" is also used by service "web"`,
			`fleet.cue:16:18: services.admin.expose.listen: listen address "127.0.0.1:8080" overlaps ":8080" of service "web"`,
		},
	}, {
		name: "listen without a port number",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	expose: listen: "localhost"
}
`,
		want: []string{`fleet.cue:6:18: services.web.expose.listen: must be "host:port" with a numeric port, such as ":8080"`},
	}, {
		name: "listen port out of range",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	expose: listen: "[::1]:99999"
}
`,
		want: []string{`fleet.cue:6:18: services.web.expose.listen: listen "[::1]:99999": port must be a number from 1 to 65535`},
	}, {
		name: "bad cron window",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	recycle: {maxAge: "24h", window: "0 25 * * *"}
}
`,
		want: []string{`fleet.cue:5:35: services.web.recycle.window: invalid cron schedule "0 25 * * *": end of range (25) above maximum (23): 25`},
	}, {
		name: "deploy window schedule that is no cron at all",
		archive: `
-- fleet.cue --
package fleet

deployWindows: [{kind: "deny", schedule: "fridays", duration: "0s"}]
services: web: process: command: ["./app"]
`,
		want: []string{`fleet.cue:3:42: deployWindows.0.schedule: must be a cron schedule with five fields ("0 9 * * 1-5") or a descriptor such as "@daily"`},
	}, {
		name: "deploy window of zero length",
		archive: `
-- fleet.cue --
package fleet

deployWindows: [{kind: "deny", schedule: "@every 1h", duration: "0s"}]
services: web: process: command: ["./app"]
`,
		want: []string{`fleet.cue:3:65: deployWindows.0.duration: "0s": must be a duration greater than 0`},
	}, {
		name: "canary settings without the canary strategy",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	rollout: canary: weight: 5
}
`,
		want: []string{`fleet.cue:5:11: services.web.rollout.canary: canary is only allowed with strategy "canary"`},
	}, {
		name: "both http and tcp checks",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	health: {http: {}, tcp: port: "http"}
}
`,
		want: []string{`fleet.cue:6:21: services.web.health.tcp: set at most one of http and tcp, not both`},
	}, {
		name: "bad names",
		archive: `
-- fleet.cue --
package fleet

name: "Prod"
services: Web: process: command: ["./app"]
services: api: {
	process: command: ["./app"]
	ports: HTTP: 80
	env: "MY-VAR": "x"
}
`,
		want: []string{
			`fleet.cue:3:7: name: must be a lower-case DNS label: letters, digits and '-', starting with a letter, at most 63`,
			`fleet.cue:4:11: services.Web: service name must be a lower-case DNS label: letters, digits and '-', starting with a letter, at most 63`,
			`fleet.cue:7:9: services.api.ports.HTTP: port name must be a lower-case DNS label: letters, digits and '-', starting with a letter, at most 63`,
			`fleet.cue:8:7: services.api.env."MY-VAR": environment variable names are letters, digits and '_', not starting with a digit`,
		},
	}, {
		name: "syntax error",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"
}
`,
		want: []string{`fleet.cue:5:1: expected operand, found '}'`},
	}, {
		name: "empty repository",
		archive: `
-- README.md --
# nothing here
`,
		want: []string{`no CUE files in .`},
	}, {
		name: "missing directory",
		dir:  "fleets/prod",
		archive: `
-- fleet.cue --
package fleet
`,
		want: []string{`no CUE files in fleets/prod`},
	}, {
		name: "two packages",
		archive: `
-- a.cue --
package a
-- b.cue --
package b
`,
		want: []string{`found packages "a" and "b" in .: a fleet is one package`},
	}, {
		name: "import of a network package without a module",
		archive: `
-- fleet.cue --
package fleet

import "example.com/x"

services: web: x.#Service
`,
		want: []string{`fleet.cue:3:8: import failed: imports are unavailable because there is no cue.mod/module.cue file`},
	}, {
		name: "import of a module dependency",
		archive: `
-- cue.mod/module.cue --
module: "example.com/fleet"
language: version: "v0.12.0"
deps: "example.com/x@v0": v: "v0.1.0"
-- fleet.cue --
package fleet

import "example.com/x"

services: web: x.#Service
`,
		want: []string{`fleet.cue:3:8: import failed: cannot find package "example.com/x": cannot fetch example.com/x@v0.1.0: module registry access disabled`},
	}, {
		name:   "oversized file",
		loader: Loader{MaxFileBytes: 64},
		archive: `
-- fleet.cue --
package fleet

services: web: process: command: ["./app"]
-- big.cue --
package fleet

// This comment makes the file larger than sixty-four bytes.
`,
		want: []string{`big.cue: file is larger than the limit of 64 bytes`},
	}, {
		name:   "snapshot too large",
		dir:    "fleet",
		loader: Loader{MaxTotalBytes: 1 << 10},
		archive: `
-- fleet/a.cue --
package fleet
-- fleet/b.cue --
package fleet
-- fleet/c.cue --
` + "package fleet\n// " + strings.Repeat("x", 1<<10) + "\n",
		want: []string{`fleet/c.cue: CUE files add up to more than the limit of 1 KiB`},
	}, {
		name: "several errors in several files, in a stable order",
		dir:  "prod",
		archive: `
-- prod/web.cue --
package fleet

services: web: {
	process: command: ["./app"]
	replicas: -2
	rollout: strategy: "big-bang"
	ports: http: 0
}
-- prod/api.cue --
package fleet

services: api: {
	docker: {image: "api", memory: "lots"}
	ports: grpc: 9000
	health: tcp: port: "grcp"
	rollout: {minHealthyFor: "10m", progressDeadline: "5m"}
	env: DEBUG: true
	expose: {listen: ":9000", port: "grpc"}
}
services: db: {}
-- prod/windows.cue --
package fleet

deployWindows: [{kind: "sometimes", schedule: "@daily"}]
services: web: stopgrace: "1s"
`,
		want: []string{
			`prod/api.cue:4:33: services.api.docker.memory: must be a size such as "512m" or "1g"`,
			`prod/api.cue:8:14: services.api.env.DEBUG: conflicting values true and string (mismatched types bool and string)`,
			`prod/api.cue:11:11: services.db: set exactly one of process and docker`,
			`prod/web.cue:5:12: services.web.replicas: must be an integer >= 0`,
			`prod/web.cue:6:21: services.web.rollout.strategy: must be "rolling", "blue-green" or "canary"`,
			`prod/windows.cue:3:17: deployWindows.0.duration: field is required but not present`,
			`prod/windows.cue:3:24: deployWindows.0.kind: must be "allow" or "deny"`,
			`prod/windows.cue:4:16: services.web.stopgrace: field not allowed`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = "."
			}
			f, err := tt.loader.Load(archiveFS(t, tt.archive), dir)
			if err == nil {
				t.Fatalf("Load returned %+v, want an error", f)
			}
			if diff := cmp.Diff(tt.want, issueStrings(t, err)); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
			if want := strings.Join(tt.want, "\n"); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}
