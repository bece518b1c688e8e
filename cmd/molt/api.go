package main

import "time"

// The documents of serve's status and events API (GET /api/v1/status,
// GET /api/v1/events, GET /api/v1/stream), of molt status -o json and
// molt history -o json, and of the dashboard. Fields are only ever added.

// apiStatus is GET /api/v1/status: every fleet the state directory keeps.
type apiStatus struct {
	GeneratedAt time.Time  `json:"generatedAt"`
	Fleets      []apiFleet `json:"fleets"`
}

// apiFleet is one fleet: where its desired state comes from and its
// services.
type apiFleet struct {
	Name     string `json:"name"`
	Source   string `json:"source,omitempty"`   // repository (and path) the fleet is read from
	Branch   string `json:"branch,omitempty"`   // the branch serve follows
	Revision string `json:"revision,omitempty"` // the revision the fleet converges to ("main@sha1:<40>")
	Commit   string `json:"commit,omitempty"`   // its full hash
	// CommitURL links to the commit on the forge, when molt knows it.
	CommitURL     string       `json:"commitURL,omitempty"`
	LastReconcile *time.Time   `json:"lastReconcile,omitempty"`
	LastResult    string       `json:"lastResult,omitempty"` // converged, failed, held, degraded, paused, error, ...
	LastError     string       `json:"lastError,omitempty"`
	Services      []apiService `json:"services"`
}

// apiService is one service of a fleet.
type apiService struct {
	Name     string `json:"name"`
	Strategy string `json:"strategy"` // rolling, blue-green, canary
	Replicas int    `json:"replicas"` // wanted
	Healthy  int    `json:"healthy"`
	// Desired is what the fleet's revision says; Live what serves traffic.
	Desired   apiRevision   `json:"desired"`
	Live      apiRevision   `json:"live"`
	Instances []apiInstance `json:"instances"`
	// Rollout is the rollout in progress, nil when the service is
	// converged.
	Rollout *apiRollout `json:"rollout,omitempty"`
	// Canary and Verify are the canary stage and the verification window
	// under way, if any.
	Canary      *apiCanary  `json:"canary,omitempty"`
	Verify      *apiWindow  `json:"verify,omitempty"`
	Degraded    string      `json:"degraded,omitempty"`
	Paused      string      `json:"paused,omitempty"`
	LastOutcome *apiOutcome `json:"lastOutcome,omitempty"`
}

// apiRevision names a generation: the revision it came from and its
// spec hash.
type apiRevision struct {
	Revision   string `json:"revision,omitempty"`
	Commit     string `json:"commit,omitempty"`
	CommitURL  string `json:"commitURL,omitempty"`
	Generation string `json:"generation,omitempty"` // short spec hash
	SpecHash   string `json:"specHash,omitempty"`
}

// apiInstance is one live instance.
type apiInstance struct {
	ID         string    `json:"id"`
	Generation string    `json:"generation"` // short spec hash
	Revision   string    `json:"revision,omitempty"`
	Target     string    `json:"target"` // process, docker
	Address    string    `json:"address,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	AgeSeconds float64   `json:"ageSeconds"`
	Health     string    `json:"health"` // healthy, unhealthy, starting, dead, unknown
	// Role is where traffic stands: active, previous (warm), canary, new,
	// or retiring.
	Role string `json:"role,omitempty"`
	// Weight is its share of the service's traffic, 0 to 100.
	Weight int `json:"weight,omitempty"`
}

// apiRollout is a rollout in progress.
type apiRollout struct {
	From      string    `json:"from,omitempty"` // generation
	To        string    `json:"to"`             // generation
	Step      string    `json:"step"`           // what molt does or waits for now
	Healthy   int       `json:"healthy"`        // healthy instances of the new generation
	Wanted    int       `json:"wanted"`
	StartedAt time.Time `json:"startedAt"`
	Deadline  time.Time `json:"deadline,omitempty"`
}

// apiCanary is a canary stage in progress.
type apiCanary struct {
	Weight   int       `json:"weight"` // percent of traffic to the canary
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Requests int64     `json:"requests"`
}

// apiWindow is a verification window in progress.
type apiWindow struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// apiOutcome is how the last reconcile ended for a service.
type apiOutcome struct {
	Result string    `json:"result"` // converged, rolled-back, degraded, paused, deferred, failed
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// apiEvents is GET /api/v1/events: the newest events first.
type apiEvents struct {
	Events []apiEvent `json:"events"`
}

// apiEvent is one thing that happened to a fleet, kept in the state
// directory (bounded) so that history survives a restart.
type apiEvent struct {
	ID    int64     `json:"id"` // increasing
	Time  time.Time `json:"time"`
	Kind  string    `json:"kind"` // deploy, rollback, failure, drift, recycle, selfheal, degraded, paused, promote, abort
	Fleet string    `json:"fleet"`
	// Service is empty for an event of the whole fleet.
	Service        string             `json:"service,omitempty"`
	Revision       string             `json:"revision,omitempty"`
	Commit         string             `json:"commit,omitempty"`
	CommitURL      string             `json:"commitURL,omitempty"`
	Author         string             `json:"author,omitempty"`
	PullRequest    int                `json:"pullRequest,omitempty"`
	PullRequestURL string             `json:"pullRequestURL,omitempty"`
	From           string             `json:"from,omitempty"` // generation
	To             string             `json:"to,omitempty"`   // generation
	Reason         string             `json:"reason,omitempty"`
	Message        string             `json:"message"`
	Figures        map[string]float64 `json:"figures,omitempty"` // e.g. errorRate, requests, p99Seconds
	DurationSecs   float64            `json:"durationSeconds,omitempty"`
	Instances      []string           `json:"instances,omitempty"`
}
