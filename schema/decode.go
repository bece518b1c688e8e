package schema

import (
	"encoding/json"
	"strconv"
)

// The raw types mirror molt.cue field by field, as CUE decodes them: the
// durations are still strings. convert.go turns them into the public types.

type rawFleet struct {
	Name          string      `json:"name"`
	DeployWindows []rawWindow `json:"deployWindows"`
}

type rawService struct {
	Replicas      int               `json:"replicas"`
	Process       *rawProcess       `json:"process"`
	Docker        *rawDocker        `json:"docker"`
	Env           map[string]string `json:"env"`
	SecretEnv     map[string]Secret `json:"secretEnv"`
	Ports         map[string]int    `json:"ports"`
	Health        rawHealth         `json:"health"`
	Liveness      *rawHealth        `json:"liveness"`
	Rollout       rawRollout        `json:"rollout"`
	Expose        *rawExpose        `json:"expose"`
	Recycle       *rawRecycle       `json:"recycle"`
	StopGrace     string            `json:"stopGrace"`
	DeployWindows []rawWindow       `json:"deployWindows"`
}

type rawProcess struct {
	Command []string `json:"command"`
	SHA256  string   `json:"sha256"`
}

type rawDocker struct {
	Image          string   `json:"image"`
	Command        []string `json:"command"`
	Entrypoint     []string `json:"entrypoint"`
	User           string   `json:"user"`
	Memory         string   `json:"memory"`
	CPUs           float64  `json:"cpus"`
	ReadOnlyRootfs bool     `json:"readOnlyRootfs"`
	Tmpfs          []string `json:"tmpfs"`
	Networks       []string `json:"networks"`
	Engines        []string `json:"engines"`
}

type rawHealth struct {
	HTTP               *rawHTTPCheck `json:"http"`
	TCP                *rawTCPCheck  `json:"tcp"`
	Interval           string        `json:"interval"`
	Timeout            string        `json:"timeout"`
	HealthyThreshold   int           `json:"healthyThreshold"`
	UnhealthyThreshold int           `json:"unhealthyThreshold"`
	Grace              string        `json:"grace"`
}

type rawHTTPCheck struct {
	Path   string `json:"path"`
	Port   string `json:"port"`
	Status int    `json:"status"`
}

type rawTCPCheck struct {
	Port string `json:"port"`
}

type rawRollout struct {
	Strategy         string          `json:"strategy"`
	MaxSurge         rawIntOrPercent `json:"maxSurge"`
	MaxUnavailable   rawIntOrPercent `json:"maxUnavailable"`
	MinHealthyFor    string          `json:"minHealthyFor"`
	ProgressDeadline string          `json:"progressDeadline"`
	KeepPrevious     string          `json:"keepPrevious"`
	VerifyFor        string          `json:"verifyFor"`
	MaxErrorRate     float64         `json:"maxErrorRate"`
	Pause            bool            `json:"pause"`
	Canary           *rawCanary      `json:"canary"`
}

type rawCanary struct {
	Count        int     `json:"count"`
	Weight       int     `json:"weight"`
	Duration     string  `json:"duration"`
	MaxErrorRate float64 `json:"maxErrorRate"`
	Then         string  `json:"then"`

	MinRequests           int     `json:"minRequests"`
	MaxLatencyRatio       float64 `json:"maxLatencyRatio"`
	OnInsufficientTraffic string  `json:"onInsufficientTraffic"`
}

type rawExpose struct {
	Listen  string      `json:"listen"`
	HAProxy *rawHAProxy `json:"haproxy"`
	Port    string      `json:"port"`
}

type rawHAProxy struct {
	Backend string `json:"backend"`
}

type rawRecycle struct {
	MaxAge string `json:"maxAge"`
	Window string `json:"window"`
}

type rawWindow struct {
	Kind     string `json:"kind"`
	Schedule string `json:"schedule"`
	Duration string `json:"duration"`
}

// rawIntOrPercent holds a count (a JSON number) or a percentage (a JSON
// string) in the form ParseIntOrPercent reads.
type rawIntOrPercent string

func (r *rawIntOrPercent) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*r = rawIntOrPercent(strconv.Itoa(n))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*r = rawIntOrPercent(s)
	return nil
}
