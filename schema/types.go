package schema

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Fleet is the validated desired state of one repository snapshot: every
// field has its default filled in and every cross-field rule has been
// checked. A Fleet is read-only once Load returns it.
type Fleet struct {
	// Name labels every instance of the fleet; two fleets sharing a target
	// never touch each other's instances.
	Name string
	// Services by name.
	Services map[string]*Service
	// DeployWindows restrict when any service of the fleet may roll out.
	DeployWindows []Window
}

// ServiceNames returns the service names in a stable (sorted) order.
func (f *Fleet) ServiceNames() []string {
	names := make([]string, 0, len(f.Services))
	for n := range f.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Instances is the number of instances the fleet asks for in total.
func (f *Fleet) Instances() int {
	n := 0
	for _, s := range f.Services {
		n += s.Replicas
	}
	return n
}

// Service is a named group of identical instances.
type Service struct {
	Name     string
	Replicas int
	// Exactly one of Process and Docker is set.
	Process *Process
	Docker  *Docker
	Env     map[string]string
	// SecretEnv adds variables whose values are not in Git, by name: each
	// is read on molt's host when an instance is provisioned (see Secret)
	// and never written or printed by molt. No name is both in Env and in
	// SecretEnv. Nil when the service declares none.
	SecretEnv map[string]Secret
	// Ports maps a port name to a port number. The process target assigns
	// a free loopback port to every name and ignores the number (0 allowed);
	// the docker target publishes the container port of that number.
	Ports map[string]int
	// Health is the readiness check: it gates traffic and rollouts.
	Health Health
	// Liveness, when set, only decides that an instance must be replaced.
	Liveness *Health
	Rollout  Rollout
	Expose   *Expose
	Recycle  *Recycle
	// StopGrace is how long a retire waits after SIGTERM (or docker stop)
	// before it kills the instance.
	StopGrace     time.Duration
	DeployWindows []Window
}

// Process runs the instance as a local process.
type Process struct {
	// Command is the executable and its arguments. A relative executable
	// path is resolved against the directory molt runs in.
	Command []string
	// SHA256, when set, is the hex digest the executable must have.
	SHA256 string
}

// Secret says where molt reads one secret on the host it runs on: exactly
// one of File and Env is set. It holds where to look, never the value.
type Secret struct {
	// File is a path (relative to molt's working directory); the value is
	// the file's content with one trailing newline trimmed.
	File string `json:"file,omitempty"`
	// Env is a variable of molt's own environment.
	Env string `json:"env,omitempty"`
}

// String says where molt looks: "file /run/secrets/db" or "environment
// variable DB_PASSWORD".
func (s Secret) String() string {
	if s.File != "" {
		return "file " + s.File
	}
	return "environment variable " + s.Env
}

// Docker runs the instance as a container.
type Docker struct {
	Image          string
	Command        []string
	Entrypoint     []string
	User           string
	Memory         string
	CPUs           float64
	ReadOnlyRootfs bool
	Tmpfs          []string
	Networks       []string
	Engines        []string
}

// Health describes a probe of an instance.
type Health struct {
	// Exactly one of HTTP and TCP is set, or neither (no check: an instance
	// counts as healthy once it runs).
	HTTP               *HTTPCheck
	TCP                *TCPCheck
	Interval           time.Duration
	Timeout            time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
	// Grace is the start grace: failures before it has passed do not count.
	Grace time.Duration
}

// HTTPCheck passes when GET Path on the named port answers Status.
type HTTPCheck struct {
	Path   string
	Port   string
	Status int
}

// TCPCheck passes when a connection to the named port opens.
type TCPCheck struct {
	Port string
}

// Strategy names a rollout strategy.
type Strategy string

const (
	Rolling   Strategy = "rolling"
	BlueGreen Strategy = "blue-green"
	CanaryRun Strategy = "canary"
)

// Rollout says how a service moves from one generation to the next.
type Rollout struct {
	Strategy         Strategy
	MaxSurge         IntOrPercent
	MaxUnavailable   IntOrPercent
	MinHealthyFor    time.Duration
	ProgressDeadline time.Duration
	// KeepPrevious is how long the previous generation stays alive, out of
	// traffic, after a rollout, so that a revert is an instant switch back.
	KeepPrevious time.Duration
	// VerifyFor: after a rollout, the new generation stays under watch this
	// long (an instance failing, or an error rate above MaxErrorRate,
	// switches back).
	VerifyFor    time.Duration
	MaxErrorRate float64 // fraction, 0..1, for verification
	// Pause stops a rollout after the canary decision (or after the first
	// rolling batch, or before the blue-green switch) until it is promoted.
	Pause  bool
	Canary *Canary
}

// Canary configures the canary strategy.
type Canary struct {
	Count        int
	Weight       int // percent of traffic
	Duration     time.Duration
	MaxErrorRate float64 // fraction, 0..1: above the old generation's
	Then         Strategy
	// MinRequests: with fewer canary requests in the window,
	// OnInsufficientTraffic ("rollback" or "promote") decides; it is also
	// the least number of requests verification judges an error rate on.
	MinRequests           int
	MaxLatencyRatio       float64
	OnInsufficientTraffic string
}

// Expose carries traffic to the named port through exactly one front: the
// built-in router listening on Listen, or the HAProxy backend HAProxy.
type Expose struct {
	Listen string // "" when HAProxy is set
	// HAProxy names the backend of the user's HAProxy that serves the
	// service ("" when Listen is set).
	HAProxy string
	Port    string
}

// Recycle replaces instances older than MaxAge, optionally only inside a
// cron Window.
type Recycle struct {
	MaxAge time.Duration
	Window string
}

// Window is a cron-based deploy window: rollouts are allowed (or denied)
// for Duration after each time Schedule fires.
type Window struct {
	Kind     string // "allow" or "deny"
	Schedule string
	Duration time.Duration
}

// IntOrPercent is a count ("2") or a percentage of replicas ("25%").
type IntOrPercent struct {
	Value   int
	Percent bool
}

// ParseIntOrPercent parses "3" or "25%".
func ParseIntOrPercent(s string) (IntOrPercent, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 100 {
			return IntOrPercent{}, fmt.Errorf("invalid percent %q", s)
		}
		return IntOrPercent{Value: n, Percent: true}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return IntOrPercent{}, fmt.Errorf("invalid count %q", s)
	}
	return IntOrPercent{Value: n}, nil
}

// Resolve turns the value into a count for the given number of replicas,
// rounding a percentage up or down (Kubernetes rounds maxSurge up and
// maxUnavailable down).
func (v IntOrPercent) Resolve(replicas int, roundUp bool) int {
	if !v.Percent {
		return v.Value
	}
	n := replicas * v.Value
	if roundUp {
		return (n + 99) / 100
	}
	return n / 100
}

func (v IntOrPercent) String() string {
	if v.Percent {
		return strconv.Itoa(v.Value) + "%"
	}
	return strconv.Itoa(v.Value)
}
