package process

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/molt-dev/molt/targets"
)

// Labels in the environment.
//
// The record in Dir/<id>/instance.json is a cache. What an instance is
// lives in its own environment, set by Provision and read back from
// /proc/PID/environ, so that losing Dir (or any record in it) loses no
// instance:
//
//	MOLT_INSTANCE     the instance id
//	MOLT_FLEET        labels: fleet, service, revision
//	MOLT_SERVICE
//	MOLT_REVISION
//	MOLT_SPEC_HASH    label: the spec hash
//	MOLT_CREATED_AT   label: when it was created (RFC 3339, nanoseconds)
//	MOLT_TARGET_DIR   the Target's Dir, absolute: only the Target over
//	                  that Dir lists the instance, so two state directories
//	                  on one machine never see each other's instances
//	MOLT_HOST         the host its endpoints name
//	MOLT_PORTS        its ports by name, "admin=40124,http=40123"
//	MOLT_STOP_GRACE   its stop grace, a Go duration ("10s")
//	MOLT_ARTIFACT     the SHA-256 of the executable it runs (the store file)
//
// An instance is a session leader (pid == session id) whose environment
// names the Target's Dir; its children inherit the variables but are
// not instances, they are members of its process group (Retire signals
// them with it). The service's env cannot override any of these.
const (
	envInstance  = "MOLT_INSTANCE"
	envTargetDir = "MOLT_TARGET_DIR"
	envSpecHash  = "MOLT_SPEC_HASH"
	envCreatedAt = "MOLT_CREATED_AT"
	envHost      = "MOLT_HOST"
	envPorts     = "MOLT_PORTS"
	envStopGrace = "MOLT_STOP_GRACE"
	envArtifact  = "MOLT_ARTIFACT"
	envFleet     = "MOLT_FLEET"
	envService   = "MOLT_SERVICE"
	envRevision  = "MOLT_REVISION"
)

// setLabels sets the variables above (but for those targets.InstanceEnv
// sets) in env.
func (t *Target) setLabels(env map[string]string, id, digest string, spec targets.Spec, ports map[string]int) {
	env[envInstance] = id
	env[envTargetDir] = t.dir
	env[envSpecHash] = spec.Labels.SpecHash
	env[envCreatedAt] = spec.Labels.CreatedAt.UTC().Format(time.RFC3339Nano)
	env[envHost] = t.host
	env[envPorts] = formatPorts(ports)
	env[envStopGrace] = spec.Service.StopGrace.String()
	env[envArtifact] = digest
}

// formatPorts writes ports as "name=port,..." in name order (port names
// are DNS labels: neither ',' nor '=' occurs in one).
func formatPorts(ports map[string]int) string {
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(ports)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(ports[name]))
	}
	return b.String()
}

func parsePorts(s string) (map[string]int, error) {
	if s == "" {
		return nil, nil
	}
	out := make(map[string]int)
	for pair := range strings.SplitSeq(s, ",") {
		name, num, ok := strings.Cut(pair, "=")
		port, err := strconv.Atoi(num)
		if !ok || name == "" || err != nil || port <= 0 || port > 65535 {
			return nil, fmt.Errorf("invalid %s %q", envPorts, s)
		}
		out[name] = port
	}
	return out, nil
}

// envMarker is what an environment holding MOLT_TARGET_DIR holds.
var envMarker = []byte(envTargetDir + "=")

// molts returns the MOLT_* variables of environ (the content of
// /proc/PID/environ: NAME=value strings, each ended by a NUL) if it names
// dir as MOLT_TARGET_DIR, else nil.
func molts(environ []byte, dir string) map[string]string {
	if !bytes.Contains(environ, envMarker) {
		return nil // most processes: no allocation
	}
	vars := make(map[string]string)
	for kv := range bytes.SplitSeq(environ, []byte{0}) {
		if !bytes.HasPrefix(kv, []byte("MOLT_")) {
			continue
		}
		k, v, ok := bytes.Cut(kv, []byte("="))
		if ok {
			vars[string(k)] = string(v)
		}
	}
	if vars[envTargetDir] != dir || !validID(vars[envInstance]) {
		return nil
	}
	return vars
}

// envRecord rebuilds the record of the instance whose leader is pid
// (started at start, during this boot) from its variables.
func (t *Target) envRecord(vars map[string]string, pid int, start uint64, argv []string) (*record, error) {
	created, err := time.Parse(time.RFC3339Nano, vars[envCreatedAt])
	if err != nil {
		return nil, fmt.Errorf("invalid %s: %w", envCreatedAt, err)
	}
	grace, err := time.ParseDuration(vars[envStopGrace])
	if err != nil {
		return nil, fmt.Errorf("invalid %s: %w", envStopGrace, err)
	}
	ports, err := parsePorts(vars[envPorts])
	if err != nil {
		return nil, err
	}
	rec := &record{
		Version: recordVersion,
		ID:      vars[envInstance],
		Labels: targets.Labels{
			Fleet:     vars[envFleet],
			Service:   vars[envService],
			SpecHash:  vars[envSpecHash],
			Revision:  vars[envRevision],
			CreatedAt: created,
		},
		Command:   argv,
		Artifact:  vars[envArtifact],
		PID:       pid,
		StartTime: start,
		BootID:    t.bootID,
		Host:      vars[envHost],
		Ports:     ports,
		StopGrace: duration(grace),
	}
	check := *rec
	if pid == 0 { // a group whose leader is gone: no process to record
		check.PID, check.StartTime = 1, 1
	}
	if err := check.validate(); err != nil {
		return nil, err
	}
	return rec, nil
}
