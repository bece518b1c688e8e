package docker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

func TestValidate(t *testing.T) {
	ok := Engine{Name: "local", Host: DefaultHost}
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"one engine", Options{Engines: []Engine{ok}}, ""},
		{"tls", Options{Engines: []Engine{{Name: "r", Host: "tcp://10.0.0.5:2376", CACert: "ca.pem", Cert: "c.pem", Key: "k.pem", HostIP: "10.0.0.5"}}}, ""},
		{"none", Options{}, "no engine"},
		{"twice", Options{Engines: []Engine{ok, ok}}, "configured twice"},
		{"no name", Options{Engines: []Engine{{Host: DefaultHost}}}, "engine name"},
		{"slash in name", Options{Engines: []Engine{{Name: "a/b", Host: DefaultHost}}}, "engine name"},
		{"no host", Options{Engines: []Engine{{Name: "a"}}}, "no host"},
		{"bad host", Options{Engines: []Engine{{Name: "a", Host: "/var/run/docker.sock"}}}, "host"},
		{"cert without key", Options{Engines: []Engine{{Name: "a", Host: DefaultHost, Cert: "c.pem"}}}, "go together"},
		{"unspecified host ip", Options{Engines: []Engine{{Name: "a", Host: DefaultHost, HostIP: "0.0.0.0"}}}, "HostIP"},
		{"negative timeout", Options{Engines: []Engine{ok}, Timeout: -time.Second}, "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"100", 100, true}, {"100b", 100, true}, {"4k", 4096, true},
		{"512m", 512 << 20, true}, {"1G", 1 << 30, true},
		{"m", 0, false}, {"1t", 0, false}, {"-1m", 0, false}, {"1.5g", 0, false}, {"99999999999999g", 0, false},
	}
	for _, tc := range tests {
		got, err := parseMemory(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseID(t *testing.T) {
	hex12 := "0123456789ab"
	tests := []struct {
		id          string
		engine, ctr string
		ok, wantErr bool
	}{
		{"local/" + hex12, "local", hex12, true, false},
		{"a.b-c_d/" + strings.Repeat("f", 64), "a.b-c_d", strings.Repeat("f", 64), true, false},
		{"hello-00000000-000000", "", "", false, false}, // a process id
		{"local/web", "", "", false, true},              // a name, not an id
		{"local/0123", "", "", false, true},
		{"/" + hex12, "", "", false, true},
		{"local/" + strings.ToUpper(hex12), "", "", false, true},
	}
	for _, tc := range tests {
		e, c, ok, err := parseID(tc.id)
		if e != tc.engine || c != tc.ctr || ok != tc.ok || (err != nil) != tc.wantErr {
			t.Errorf("parseID(%q) = %q, %q, %v, %v", tc.id, e, c, ok, err)
		}
	}
	if got := instanceID("local", strings.Repeat("a", 64)); got != "local/aaaaaaaaaaaa" {
		t.Errorf("instanceID = %s", got)
	}
}

func TestDescribeChanges(t *testing.T) {
	ch := func(k container.ChangeType, p string) container.FilesystemChange {
		return container.FilesystemChange{Kind: k, Path: p}
	}
	tests := []struct {
		name    string
		changes []container.FilesystemChange
		mounts  []string
		want    string
	}{
		{"none", nil, nil, ""},
		{"added", []container.FilesystemChange{ch(container.ChangeAdd, "/x")}, nil, "/x added"},
		{"parent marked changed", []container.FilesystemChange{
			ch(container.ChangeModify, "/etc"), ch(container.ChangeAdd, "/etc/x"), ch(container.ChangeDelete, "/etc/passwd"),
		}, nil, "/etc/passwd deleted, /etc/x added"},
		{"mount points", []container.FilesystemChange{
			ch(container.ChangeAdd, "/var"), ch(container.ChangeAdd, "/var/cache"), ch(container.ChangeAdd, "/var/cache/app"), ch(container.ChangeAdd, "/tmp"),
		}, []string{"/var/cache/app", "/tmp"}, ""},
		{"beside a mount point", []container.FilesystemChange{
			ch(container.ChangeAdd, "/tmp"), ch(container.ChangeAdd, "/var"), ch(container.ChangeAdd, "/var/x"),
		}, []string{"/tmp"}, "/var/x added"},
		{"many", []container.FilesystemChange{
			ch(container.ChangeAdd, "/a"), ch(container.ChangeAdd, "/b"), ch(container.ChangeAdd, "/c"), ch(container.ChangeAdd, "/d"),
			ch(container.ChangeAdd, "/e"), ch(container.ChangeAdd, "/f"), ch(container.ChangeAdd, "/g"),
		}, nil, "/a added, /b added, /c added, /d added, /e added, and 2 more"},
	}
	for _, tc := range tests {
		if got := describeChanges(tc.changes, tc.mounts); got != tc.want {
			t.Errorf("%s: describeChanges = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The fingerprint of the create request equals that of the container the
// engine makes of it, with the image's defaults merged in as the engine
// merges them (daemon/commit.go merge).
func TestFingerprintSurvivesMerge(t *testing.T) {
	img := &imageConfig{
		User: "app", WorkingDir: "/srv", Entrypoint: []string{"/hello"}, Cmd: []string{"serve"},
		Env: []string{"PATH=/bin", "HOST=0.0.0.0", "PORT=8080"}, Exposed: []string{"8080/tcp"},
	}
	e := &engine{Engine: Engine{Name: "local"}}
	tests := []struct {
		name string
		edit func(d *schema.Docker, env map[string]string)
	}{
		{"defaults", func(*schema.Docker, map[string]string) {}},
		{"own entrypoint", func(d *schema.Docker, _ map[string]string) { d.Entrypoint = []string{"/other"} }},
		{"own command", func(d *schema.Docker, _ map[string]string) { d.Command = []string{"x"} }},
		{"image's entrypoint", func(d *schema.Docker, _ map[string]string) { d.Entrypoint = []string{"/hello"} }},
		{"own user", func(d *schema.Docker, _ map[string]string) { d.User = "nobody" }},
		{"env shadowing", func(_ *schema.Docker, env map[string]string) { env["HOST"] = "127.0.0.1"; env["PATH"] = "/bin" }},
		{"limits", func(d *schema.Docker, _ map[string]string) {
			d.Memory = "1g"
			d.CPUs = 1.5
			d.Tmpfs = []string{"/tmp:size=1m"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"VERSION": "v1"}
			d := &schema.Docker{Image: "web:v1", ReadOnlyRootfs: true}
			tc.edit(d, env)
			spec := targets.Spec{
				Labels:  targets.Labels{Fleet: "f", Service: "web", SpecHash: "abc"},
				Service: &schema.Service{Name: "web", Docker: d, Env: env, Ports: map[string]int{"http": 8080, "admin": 9090}},
			}
			req := newRequest(spec, e, "sha256:"+strings.Repeat("1", 64))
			want := fingerprint(req.config, req.host, req.networks, img)

			merged := *req.config
			merge(&merged, img)
			if got := fingerprint(&merged, req.host, req.networks, img); got != want {
				t.Errorf("merged container hashes to %s, the request to %s", got, want)
			}
			changed := *req.host
			changed.Memory++
			if fingerprint(&merged, &changed, req.networks, img) == want {
				t.Errorf("a memory change does not change the fingerprint")
			}
			if fingerprint(&merged, req.host, append(slices.Clone(req.networks), "other"), img) == want {
				t.Errorf("another network does not change the fingerprint")
			}
		})
	}
}

// merge fills c with the defaults of img as the engine does.
func merge(c *container.Config, img *imageConfig) {
	if c.User == "" {
		c.User = img.User
	}
	if c.WorkingDir == "" {
		c.WorkingDir = img.WorkingDir
	}
	env := slices.Clone(c.Env)
	for _, ie := range img.Env {
		k, _, _ := strings.Cut(ie, "=")
		if !slices.ContainsFunc(c.Env, func(s string) bool { return strings.HasPrefix(s, k+"=") }) {
			env = append(env, ie)
		}
	}
	c.Env = env
	if len(c.Entrypoint) == 0 {
		if len(c.Cmd) == 0 {
			c.Cmd = img.Cmd
		}
		c.Entrypoint = img.Entrypoint
	}
}

func TestContainerEnv(t *testing.T) {
	spec := targets.Spec{
		Labels: targets.Labels{Fleet: "f", Service: "web", Revision: "main@sha1:1"},
		Service: &schema.Service{
			Env:   map[string]string{"A": "1", "PORT": "overridden", "MOLT_ENGINE": "overridden"},
			Ports: map[string]int{"http": 8080, "metrics-v2": 9100},
		},
	}
	got := containerEnv("e1", spec)
	want := []string{"A=1", "MOLT_ENGINE=e1", "MOLT_FLEET=f", "MOLT_REVISION=main@sha1:1", "MOLT_SERVICE=web",
		"PORT=8080", "PORT_HTTP=8080", "PORT_METRICS_V2=9100"}
	if !slices.Equal(got, want) {
		t.Errorf("containerEnv =\n%v\nwant\n%v", got, want)
	}
}

func TestStopSeconds(t *testing.T) {
	for in, want := range map[float64]int{0: 0, 0.2: 1, 1: 1, 1.5: 2, 10: 10} {
		if got := stopSeconds(in); got != want {
			t.Errorf("stopSeconds(%v) = %d, want %d", in, got, want)
		}
	}
}

func TestParseEngine(t *testing.T) {
	tests := []struct {
		in      string
		want    Engine
		wantErr bool
	}{
		{"local=unix:///var/run/docker.sock", Engine{Name: "local", Host: "unix:///var/run/docker.sock"}, false},
		{"b=tcp://10.0.0.5:2376,ca=/c/ca.pem,cert=/c/cert.pem,key=/c/key.pem,host-ip=10.0.0.5",
			Engine{Name: "b", Host: "tcp://10.0.0.5:2376", CACert: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem", HostIP: "10.0.0.5"}, false},
		{"unix:///var/run/docker.sock", Engine{}, true},
		{"local", Engine{}, true},
		{"local=", Engine{}, true},
		{"a/b=unix:///x", Engine{}, true},
		{"a=unix:///x,tls=1", Engine{}, true},
		{"a=unix:///x,cert=c.pem", Engine{}, true},
		{"a=unix:///x,max=3", Engine{Name: "a", Host: "unix:///x", Max: 3}, false},
		{"a=unix:///x,max=0", Engine{}, true},
		{"a=unix:///x,max=many", Engine{}, true},
	}
	for _, tc := range tests {
		got, err := ParseEngine(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseEngine(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestDefaultEngine(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := DefaultEngine(env(nil)); got != (Engine{Name: "default", Host: DefaultHost}) {
		t.Errorf("no env: %+v", got)
	}
	got := DefaultEngine(env(map[string]string{"DOCKER_HOST": "tcp://h:2376", "DOCKER_CERT_PATH": "/c", "DOCKER_TLS_VERIFY": "1"}))
	want := Engine{Name: "default", Host: "tcp://h:2376", CACert: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem"}
	if got != want {
		t.Errorf("TLS env: %+v, want %+v", got, want)
	}
}
