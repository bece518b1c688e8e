// Package schematest generates fleets for molt's tests and benchmarks.
package schematest

import (
	"fmt"
	"strings"
)

// GeneratedFleet returns a fleet of n services in one file (package
// fleet), each with a process, environment, two ports, an HTTP health
// check, a blue-green rollout and an exposed address: the fleet of the
// schema's benchmarks and load-limit tests, and of `make bench`.
func GeneratedFleet(n int) []byte {
	var b strings.Builder
	b.WriteString("package fleet\n\nname: \"bench\"\n")
	for i := range n {
		fmt.Fprintf(&b, `
services: "svc-%d": {
	process: command: ["./app", "-id", "%d"]
	replicas: %d
	env: {INDEX: "%d", MODE: "bench"}
	ports: {http: 0, metrics: 0}
	health: http: path: "/ready"
	rollout: {strategy: "blue-green", maxSurge: "25%%", minHealthyFor: "5s"}
	expose: listen: "127.0.0.1:%d"
}
`, i, i, 1+i%5, i, 10000+i)
	}
	return []byte(b.String())
}
