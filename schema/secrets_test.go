package schema

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadSecretEnv(t *testing.T) {
	archive := `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	env: GREETING: "hello"
	secretEnv: {
		DB_PASSWORD: file: "/run/secrets/db"
		API_KEY: env: "SHOP_API_KEY"
	}
}
services: api: process: command: ["./app"]
`
	got, err := Load(archiveFS(t, archive), ".")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Fleet{Name: "default", Services: map[string]*Service{
		"web": with(defaultService("web"), func(s *Service) {
			s.Env = map[string]string{"GREETING": "hello"}
			s.SecretEnv = map[string]Secret{
				"DB_PASSWORD": {File: "/run/secrets/db"},
				"API_KEY":     {Env: "SHOP_API_KEY"},
			}
		}),
		// A service without secretEnv has none (nil).
		"api": defaultService("api"),
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	if s := got.Services["web"].SecretEnv["DB_PASSWORD"].String(); s != "file /run/secrets/db" {
		t.Errorf("where = %q", s)
	}
	if s := got.Services["web"].SecretEnv["API_KEY"].String(); s != "environment variable SHOP_API_KEY" {
		t.Errorf("where = %q", s)
	}
}

func TestLoadSecretEnvInvalid(t *testing.T) {
	tests := []struct {
		name    string
		archive string
		want    []string
	}{{
		name: "neither file nor env",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	secretEnv: DB_PASSWORD: {}
}
`,
		want: []string{`fleet.cue:5:13: services.web.secretEnv.DB_PASSWORD: set exactly one of file and env`},
	}, {
		name: "both file and env",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	secretEnv: DB_PASSWORD: {file: "/run/secrets/db", env: "DB_PASSWORD"}
}
`,
		want: []string{`fleet.cue:5:57: services.web.secretEnv.DB_PASSWORD.env: set exactly one of file and env, not both`},
	}, {
		name: "a value written in Git",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	secretEnv: DB_PASSWORD: "hunter2"
}
`,
		want: []string{`fleet.cue:5:26: services.web.secretEnv.DB_PASSWORD: must be {file: "PATH"} or {env: "VAR"}: molt reads a secret on its host, its value is never in Git`},
	}, {
		name: "also in env",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	env: DB_PASSWORD: "changeme"
	secretEnv: {
		API_KEY: env: "SHOP_API_KEY"
		DB_PASSWORD: file: "/run/secrets/db"
	}
}
`,
		want: []string{`fleet.cue:8:3: services.web.secretEnv.DB_PASSWORD: DB_PASSWORD is also set in env: a variable comes from env or from secretEnv, not both`},
	}, {
		name: "one of molt's own settings",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	secretEnv: GIT_TOKEN: env: "MOLT_GIT_TOKEN"
}
`,
		want: []string{`fleet.cue:5:29: services.web.secretEnv.GIT_TOKEN.env: MOLT_GIT_TOKEN is one of molt's own settings (MOLT_*), which molt never hands to an instance`},
	}, {
		name: "bad names, empty path, misspelled field",
		archive: `
-- fleet.cue --
package fleet

services: web: {
	process: command: ["./app"]
	secretEnv: {
		"DB-PASSWORD": file: "/run/secrets/db"
		EMPTY: file: ""
		BAD_VAR: env: "1ST"
		TYPO: fille: "/run/secrets/typo"
	}
}
`,
		want: []string{
			`fleet.cue:6:3: services.web.secretEnv."DB-PASSWORD": environment variable names are letters, digits and '_', not starting with a digit`,
			`fleet.cue:7:16: services.web.secretEnv.EMPTY.file: must be a non-empty path`,
			`fleet.cue:8:17: services.web.secretEnv.BAD_VAR.env: must be an environment variable name: letters, digits and '_', not starting with a digit`,
			`fleet.cue:9:3: services.web.secretEnv.TYPO: set exactly one of file and env`,
			`fleet.cue:9:9: services.web.secretEnv.TYPO.fille: field not allowed`,
		},
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
			if want := strings.Join(tt.want, "\n"); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

// TestSpecHashSecrets: secrets enter the spec hash only through what is
// resolved for them (their keyed digests), never through where they are
// read from, and a service without secretEnv hashes as before.
func TestSpecHashSecrets(t *testing.T) {
	plain := defaultService("web")
	fromFile := with(plain, func(s *Service) { s.SecretEnv = map[string]Secret{"DB_PASSWORD": {File: "/run/secrets/db"}} })
	fromEnv := with(plain, func(s *Service) { s.SecretEnv = map[string]Secret{"DB_PASSWORD": {Env: "DB_PASSWORD"}} })
	if plain.SpecHash(nil) != fromFile.SpecHash(nil) || fromFile.SpecHash(nil) != fromEnv.SpecHash(nil) {
		t.Error("where a secret is read from changes the spec hash")
	}
	one := fromFile.SpecHash(map[string]string{"secret:DB_PASSWORD": "aa"})
	two := fromFile.SpecHash(map[string]string{"secret:DB_PASSWORD": "bb"})
	if one == two || one == fromFile.SpecHash(nil) {
		t.Error("the resolved digest of a secret does not change the spec hash")
	}
}
