package docker

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/molt-dev/molt/targets"
)

// The labels molt writes on every container it creates. A container
// without LabelFleet, LabelService and LabelSpecHash is not molt's.
const (
	LabelFleet     = "molt.fleet"
	LabelService   = "molt.service"
	LabelSpecHash  = "molt.spec-hash"
	LabelRevision  = "molt.revision"
	LabelCreatedAt = "molt.created-at" // RFC 3339, nanoseconds, UTC
	// LabelEngine is the name of the engine molt created the container
	// through, so that one daemon configured under two names lists each
	// container once, under the name that created it.
	LabelEngine = "molt.engine"
	// LabelImage is the content id the container was created from.
	LabelImage = "molt.image"
	// LabelImageRef is the reference that resolved to LabelImage, for people.
	LabelImageRef = "molt.image-ref"
	// LabelConfig is a hash of the container configuration molt created
	// (see fingerprint), for drift inspection.
	LabelConfig = "molt.config"
	// LabelStopGrace is the service's stop grace (a Go duration), which
	// Retire needs and cannot otherwise know.
	LabelStopGrace = "molt.stop-grace"
	// LabelPorts maps port names to container ports (JSON), so that
	// endpoints can be named from a listing.
	LabelPorts = "molt.ports"
	// LabelSecretEnv names the variables of the container's environment
	// that are secrets (comma-separated, sorted; absent when there are
	// none), which LabelConfig leaves out. Names only, never a value.
	LabelSecretEnv = "molt.secret-env"
)

// labelsOf returns molt's labels of a container, and false when the
// container is not molt's.
func labelsOf(l map[string]string) (targets.Labels, bool) {
	out := targets.Labels{
		Fleet:    l[LabelFleet],
		Service:  l[LabelService],
		SpecHash: l[LabelSpecHash],
		Revision: l[LabelRevision],
	}
	if out.Fleet == "" || out.Service == "" || out.SpecHash == "" {
		return targets.Labels{}, false
	}
	if at, err := time.Parse(time.RFC3339Nano, l[LabelCreatedAt]); err == nil {
		out.CreatedAt = at
	}
	return out, true
}

// containerLabels returns every label of a new container.
func containerLabels(spec targets.Spec, engine, imageID, config string) map[string]string {
	d := spec.Service.Docker
	ports, _ := json.Marshal(spec.Service.Ports) // a map of ints: cannot fail
	labels := map[string]string{
		LabelFleet:     spec.Labels.Fleet,
		LabelService:   spec.Labels.Service,
		LabelSpecHash:  spec.Labels.SpecHash,
		LabelRevision:  spec.Labels.Revision,
		LabelCreatedAt: spec.Labels.CreatedAt.UTC().Format(time.RFC3339Nano),
		LabelEngine:    engine,
		LabelImage:     imageID,
		LabelImageRef:  d.Image,
		LabelConfig:    config,
		LabelStopGrace: spec.Service.StopGrace.String(),
		LabelPorts:     string(ports),
	}
	if names := secretNames(spec); len(names) > 0 {
		labels[LabelSecretEnv] = strings.Join(names, ",")
	}
	return labels
}

// secretNames are the names of the service's secretEnv, sorted.
func secretNames(spec targets.Spec) []string {
	return slices.Sorted(maps.Keys(spec.Service.SecretEnv))
}

// secretNamesOf reads LabelSecretEnv.
func secretNamesOf(l map[string]string) []string {
	if l[LabelSecretEnv] == "" {
		return nil
	}
	return strings.Split(l[LabelSecretEnv], ",")
}

// portsOf reads LabelPorts; a missing or broken label gives no ports.
func portsOf(l map[string]string) map[string]int {
	var ports map[string]int
	if err := json.Unmarshal([]byte(l[LabelPorts]), &ports); err != nil {
		return nil
	}
	return ports
}

// stopGraceOf reads LabelStopGrace; a missing or broken label gives the
// schema's default of 10 seconds.
func stopGraceOf(l map[string]string) time.Duration {
	d, err := time.ParseDuration(l[LabelStopGrace])
	if err != nil || d < 0 {
		return 10 * time.Second
	}
	return d
}

// shortIDLen is how many hex digits of a container id an instance id keeps.
const shortIDLen = 12

// instanceID is "<engine>/<the first 12 hex digits of the container id>".
func instanceID(engine, containerID string) string {
	if len(containerID) > shortIDLen {
		containerID = containerID[:shortIDLen]
	}
	return engine + "/" + containerID
}

// parseID splits an instance id into engine name and container id. ok is
// false when id has no "/", so cannot name a container of this target; an
// id with a "/" that is not engine/hex is an error.
func parseID(id string) (engine, container string, ok bool, err error) {
	engine, container, found := strings.Cut(id, "/")
	if !found {
		return "", "", false, nil
	}
	if !validName(engine) || len(container) < shortIDLen || len(container) > 64 || !isHex(container) {
		return "", "", false, fmt.Errorf("%q is not a docker instance id (engine/container id)", id)
	}
	return engine, container, true, nil
}

func isHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
