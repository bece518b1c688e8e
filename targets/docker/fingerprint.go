package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// configDoc is the part of a container's configuration that LabelConfig
// hashes: what molt sets and what can be changed behind its back (docker
// update, docker network connect). It is built twice, from the create
// request when the container is made and from an inspect when drift is
// looked for, and the two must agree for an untouched container on every
// engine version. So it holds only what the engine keeps as it was asked,
// and where the engine fills in the image's defaults (env, exposed ports,
// user, working directory, entrypoint, command) it holds only what differs
// from the image's config, which both sides can compute.
type configDoc struct {
	User       string            `json:"user,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Env        []string          `json:"env,omitempty"`
	Exposed    []string          `json:"exposed,omitempty"`
	Bindings   []string          `json:"bindings,omitempty"` // "8080/tcp@127.0.0.1"; host ports are the engine's choice
	ReadOnly   bool              `json:"readOnly,omitempty"`
	Tmpfs      map[string]string `json:"tmpfs,omitempty"`
	Memory     int64             `json:"memory,omitempty"`
	NanoCPUs   int64             `json:"nanoCPUs,omitempty"`
	CPUShares  int64             `json:"cpuShares,omitempty"`
	CPUQuota   int64             `json:"cpuQuota,omitempty"`
	CPUPeriod  int64             `json:"cpuPeriod,omitempty"`
	CpusetCpus string            `json:"cpusetCpus,omitempty"`
	Restart    string            `json:"restart,omitempty"`
	Privileged bool              `json:"privileged,omitempty"`
	Networks   []string          `json:"networks"`
}

// fingerprint hashes the configDoc of a container config and its host
// config, attached to networks, relative to the image config img.
func fingerprint(cfg *container.Config, host *container.HostConfig, networks []string, img *imageConfig) string {
	if img == nil {
		img = &imageConfig{}
	}
	if cfg == nil {
		cfg = &container.Config{}
	}
	if host == nil {
		host = &container.HostConfig{}
	}
	doc := configDoc{
		User:       unlessImage(cfg.User, img.User),
		WorkingDir: unlessImage(cfg.WorkingDir, img.WorkingDir),
		Entrypoint: unlessImageList(cfg.Entrypoint, img.Entrypoint),
		Cmd:        unlessImageList(cfg.Cmd, img.Cmd),
		Env:        minus(cfg.Env, img.Env),
		Exposed:    minus(portNames(cfg.ExposedPorts), img.Exposed),
		Bindings:   bindings(host.PortBindings),
		ReadOnly:   host.ReadonlyRootfs,
		Memory:     host.Memory,
		NanoCPUs:   host.NanoCPUs,
		CPUShares:  host.CPUShares,
		CPUQuota:   host.CPUQuota,
		CPUPeriod:  host.CPUPeriod,
		CpusetCpus: host.CpusetCpus,
		Restart:    string(host.RestartPolicy.Name),
		Privileged: host.Privileged,
		Networks:   slices.Sorted(slices.Values(networks)),
	}
	if len(host.Tmpfs) > 0 {
		doc.Tmpfs = host.Tmpfs
	}
	if doc.Restart == string(container.RestartPolicyDisabled) {
		doc.Restart = ""
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic("docker: config fingerprint: " + err.Error()) // plain values only
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// inspectFingerprints are the fingerprints an untouched container may
// have as inspected: the plain one first and, for a container of Podman,
// also those with what Podman adds to every container taken away, in
// every combination (the create request may have set some of the same
// itself: TERM=xterm, say). Docker's containers have the plain one only.
func inspectFingerprints(c container.InspectResponse, img *imageConfig) []string {
	var networks []string
	if c.NetworkSettings != nil {
		networks = slices.Collect(maps.Keys(c.NetworkSettings.Networks))
	}
	cfg := c.Config
	if cfg != nil {
		cfg = withoutSecrets(cfg, secretNamesOf(cfg.Labels))
	}
	out := []string{fingerprint(cfg, c.HostConfig, networks, img)}
	if !isPodman(cfg) {
		return out
	}
	// What Podman always adds, or writes its own way, is undone first;
	// what the request may have asked for the same is undone in every
	// combination.
	base, host, nets := podmanNormal(*cfg, c.HostConfig, networks)
	for mask := 0; mask < 1<<len(podmanMaybe); mask++ {
		cc, h, n := base, host, nets
		if h != nil {
			hc := *h
			h = &hc
		}
		for i, undo := range podmanMaybe {
			if mask&(1<<i) != 0 {
				undo(&cc, &h, &n)
			}
		}
		out = append(out, fingerprint(&cc, h, n, img))
	}
	return out
}

// isPodman reports whether a container's configuration is one Podman
// made: Podman puts container=podman in the environment of every one.
func isPodman(cfg *container.Config) bool {
	return cfg != nil && slices.Contains(cfg.Env, podmanEnv)
}

// podmanEnv is in the environment of every container Podman makes.
const podmanEnv = "container=podman"

// podmanTmpfsOptions are the options Podman gives every tmpfs, after
// those the request asked for.
const podmanTmpfsOptions = "rw,rprivate,nosuid,nodev,tmpcopyup"

// podmanNormal undoes what Podman adds to every container, or writes
// differently from the request: container=podman and HOSTNAME in the
// environment, its options on every tmpfs, a CPU quota and period worked
// out from NanoCPUs, and the default network's name (podman for bridge).
func podmanNormal(cfg container.Config, host *container.HostConfig, networks []string) (container.Config, *container.HostConfig, []string) {
	cfg.Env = slices.DeleteFunc(slices.Clone(cfg.Env), func(kv string) bool {
		return kv == podmanEnv || kv == "HOSTNAME="+cfg.Hostname
	})
	if host != nil {
		h := *host
		if len(h.Tmpfs) > 0 {
			t := make(map[string]string, len(h.Tmpfs))
			for path, opts := range h.Tmpfs {
				opts = strings.TrimSuffix(opts, podmanTmpfsOptions)
				t[path] = strings.TrimSuffix(opts, ",")
			}
			h.Tmpfs = t
		}
		if h.NanoCPUs != 0 && h.CPUPeriod != 0 && h.CPUQuota == h.NanoCPUs*h.CPUPeriod/1e9 {
			h.CPUQuota, h.CPUPeriod = 0, 0
		}
		host = &h
	}
	networks = slices.Clone(networks)
	for i, name := range networks {
		if name == "podman" {
			networks[i] = "bridge"
		}
	}
	return cfg, host, networks
}

// podmanMaybe undo, one each, what Podman adds that the request may also
// have asked for itself.
var podmanMaybe = []func(cfg *container.Config, host **container.HostConfig, networks *[]string){
	func(cfg *container.Config, _ **container.HostConfig, _ *[]string) {
		cfg.Env = slices.DeleteFunc(slices.Clone(cfg.Env), func(kv string) bool { return kv == "TERM=xterm" })
	},
	// The working directory "/" where the image names none.
	func(cfg *container.Config, _ **container.HostConfig, _ *[]string) {
		if cfg.WorkingDir == "/" {
			cfg.WorkingDir = ""
		}
	},
	// The tmpfs of a read-only root file system (read_only_tmpfs), each
	// on its own.
	dropTmpfs("/run"), dropTmpfs("/tmp"), dropTmpfs("/var/tmp"),
}

// dropTmpfs undoes a tmpfs at path.
func dropTmpfs(path string) func(*container.Config, **container.HostConfig, *[]string) {
	return func(_ *container.Config, host **container.HostConfig, _ *[]string) {
		if *host == nil || !hasKey((*host).Tmpfs, path) {
			return
		}
		t := maps.Clone((*host).Tmpfs)
		delete(t, path)
		if len(t) == 0 {
			t = nil
		}
		(*host).Tmpfs = t
	}
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// withoutSecrets returns cfg without the variables named in secrets in its
// Env (cfg itself when there are none), so that the configuration hash, a
// label anyone listing containers can read, is never a digest of a secret
// (a container's configuration cannot change its environment anyway).
func withoutSecrets(cfg *container.Config, secrets []string) *container.Config {
	if len(secrets) == 0 {
		return cfg
	}
	c := *cfg
	c.Env = slices.DeleteFunc(slices.Clone(cfg.Env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(secrets, name)
	})
	return &c
}

// imageConfig is what of an image's config the engine fills into a
// container's when the container does not set it.
type imageConfig struct {
	User, WorkingDir     string
	Entrypoint, Cmd, Env []string
	Exposed              []string // "8080/tcp"
}

// imageConfigOf extracts an imageConfig from an image inspect.
func imageConfigOf(c *dockerspec.DockerOCIImageConfig) *imageConfig {
	if c == nil {
		return &imageConfig{}
	}
	return &imageConfig{
		User:       c.User,
		WorkingDir: c.WorkingDir,
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		Env:        c.Env,
		Exposed:    slices.Collect(maps.Keys(c.ExposedPorts)),
	}
}

func unlessImage(v, image string) string {
	if v == image {
		return ""
	}
	return v
}

func unlessImageList(v, image []string) []string {
	if len(v) == 0 || slices.Equal(v, image) {
		return nil
	}
	return v
}

// minus returns the sorted entries of a that are not in b.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func portNames(s network.PortSet) []string {
	out := make([]string, 0, len(s))
	for p := range s {
		out = append(out, p.String())
	}
	return out
}

func bindings(m network.PortMap) []string {
	var out []string
	for p, bs := range m {
		for _, b := range bs {
			out = append(out, p.String()+"@"+b.HostIP.String())
		}
	}
	slices.Sort(out)
	return out
}
