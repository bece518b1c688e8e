package targets

// Engine is one of the places a target runs instances in (a Docker
// Engine, a host), as the target last saw it: what placement needs to
// spread a generation's instances and to respect a capacity.
type Engine struct {
	// Name is what Instance.Engine and Spec.Engine say.
	Name string `json:"name"`
	// Up: the engine answered the target's last look (its last List).
	// The instances of an engine that is not up are not listed: they
	// count as lost, and are replaced elsewhere.
	Up bool `json:"up"`
	// Max is the most instances (of every fleet) the engine may run; 0
	// means no limit.
	Max int `json:"max,omitempty"`
	// Running counts the molt instances (of every fleet) running on it,
	// as last listed.
	Running int `json:"running"`
}
