package schema

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExposeHAProxy: a service exposed through a HAProxy backend loads with
// the backend's name and no listen address.
func TestExposeHAProxy(t *testing.T) {
	f, err := Load(archiveFS(t, `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	expose: haproxy: backend: "be_web"
}
services: api: {
	process: command: ["./app"]
	ports: http: 0
	expose: listen: ":8080"
}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Expose{HAProxy: "be_web", Port: "http"}, f.Services["web"].Expose); diff != "" {
		t.Errorf("web's expose (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&Expose{Listen: ":8080", Port: "http"}, f.Services["api"].Expose); diff != "" {
		t.Errorf("api's expose (-want +got):\n%s", diff)
	}
}

func TestExposeHAProxyInvalid(t *testing.T) {
	tests := []struct {
		name, archive string
		want          []string
	}{{
		name: "both fronts",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	expose: {listen: ":8080", haproxy: backend: "web"}
}
`,
		want: []string{`fleet.cue:6:28: services.web.expose.haproxy: expose has both listen and haproxy: a service is exposed through exactly one front (listen for molt's router, haproxy for a HAProxy backend)`},
	}, {
		name: "no front",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	expose: port: "http"
}
`,
		want: []string{`fleet.cue:6:2: services.web.expose: expose needs exactly one of listen (molt's router listens on host:port) and haproxy (backend: "NAME" of your haproxy.cfg)`},
	}, {
		name: "bad backend name",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	expose: haproxy: backend: "my backend"
}
`,
		want: []string{`fleet.cue:6:28: services.web.expose.haproxy.backend: must be a HAProxy backend name: letters, digits, '_', '.', ':' and '-'`},
	}, {
		name: "backend of two services",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	ports: http: 0
	expose: haproxy: backend: "be"
}
services: api: {
	process: command: ["./app"]
	ports: http: 0
	expose: haproxy: backend: "be"
}
`,
		want: []string{`fleet.cue:11:28: services.api.expose.haproxy.backend: HAProxy backend "be" is also used by service "web": molt keeps a backend's servers equal to one service's instances`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Load(archiveFS(t, tt.archive), ".")
			if err == nil {
				t.Fatalf("Load returned %+v, want an error", f)
			}
			if diff := cmp.Diff(tt.want, issueStrings(t, err)); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
		})
	}
}
