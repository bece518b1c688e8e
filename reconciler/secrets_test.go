package reconciler

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// secretService is a process service with the given secretEnv.
func secretService(secrets map[string]schema.Secret) *schema.Service {
	svc := rolling(1, "1", "0")
	svc.Process = &schema.Process{Command: []string{"./app"}}
	svc.SecretEnv = secrets
	return svc
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSecretsRead(t *testing.T) {
	dir := t.TempDir()
	state := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SHOP_KEY": "k-123", "EMPTY": "", "NUL": "a\x00b"}
	s := NewSecrets(state, nil)
	s.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	writeFile(t, filepath.Join(state, "token"), "molt's own\n")

	tests := []struct {
		name string
		ref  schema.Secret
		want string
		err  string // the whole message after "invalid instance spec: "
	}{
		{"one trailing newline trimmed", schema.Secret{File: file("a", "hunter2\n")}, "hunter2", ""},
		{"only one", schema.Secret{File: file("b", "hunter2\n\n")}, "hunter2\n", ""},
		{"a CRLF is one newline", schema.Secret{File: file("c", "hunter2\r\n")}, "hunter2", ""},
		{"no newline", schema.Secret{File: file("d", "  spaces kept ")}, "  spaces kept ", ""},
		{"empty file", schema.Secret{File: file("e", "")}, "", ""},
		{"environment", schema.Secret{Env: "SHOP_KEY"}, "k-123", ""},
		{"empty variable", schema.Secret{Env: "EMPTY"}, "", ""},
		{"missing file", schema.Secret{File: filepath.Join(dir, "nope")},
			"", "secret S: file " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"unset variable", schema.Secret{Env: "DB_PW"},
			"", "secret S: environment variable DB_PW is not set in molt's environment"},
		{"a directory", schema.Secret{File: dir}, "", "secret S: file " + dir + ": not a regular file but a directory"},
		{"a FIFO is not waited on", schema.Secret{File: fifo}, "", "secret S: file " + fifo + ": not a regular file but a named pipe"},
		{"too large", schema.Secret{File: file("big", strings.Repeat("x", 64<<10+1))}, "", "secret S: file " + filepath.Join(dir, "big") + ": larger than 64 KiB"},
		{"NUL in a file", schema.Secret{File: file("nul", "a\x00b")}, "", "secret S: file " + filepath.Join(dir, "nul") + ": holds a NUL byte, which an environment variable cannot"},
		{"NUL in a variable", schema.Secret{Env: "NUL"}, "", "secret S: environment variable NUL holds a NUL byte"},
		{"a file of the state directory", schema.Secret{File: filepath.Join(state, "token")},
			"", "secret S: file " + filepath.Join(state, "token") + ": is inside molt's state directory, whose files are molt's own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Read(secretService(map[string]schema.Secret{"S": tt.ref}))
			if tt.err != "" {
				if !errors.Is(err, targets.ErrInvalidSpec) || err.Error() != "invalid instance spec: "+tt.err {
					t.Fatalf("Read = %v, want an invalid spec: %s", err, tt.err)
				}
				return
			}
			if err != nil || got["S"] != tt.want {
				t.Fatalf("Read = %q, %v; want %q", got["S"], err, tt.want)
			}
		})
	}

	// Every secret that cannot be read is named, in order.
	_, err := s.Read(secretService(map[string]schema.Secret{
		"B_SECRET": {Env: "UNSET_B"}, "A_SECRET": {Env: "UNSET_A"}, "OK": {Env: "SHOP_KEY"},
	}))
	want := "invalid instance spec: secret A_SECRET: environment variable UNSET_A is not set in molt's environment; " +
		"secret B_SECRET: environment variable UNSET_B is not set in molt's environment"
	if err == nil || err.Error() != want {
		t.Errorf("Read = %v, want %s", err, want)
	}
}

// The digest of a secret is keyed: the same value digests alike under one
// state directory (across restarts) and differently under another, and
// is not the plain SHA-256 of name and value.
func TestSecretsDigestIsKeyed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "db"), "1234\n")
	svc := secretService(map[string]schema.Secret{"PIN": {File: filepath.Join(dir, "db")}})
	stateA, stateB := t.TempDir(), t.TempDir()
	a1, err := NewSecrets(stateA, nil).Resolve(svc)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := NewSecrets(stateA, nil).Resolve(svc)
	b, _ := NewSecrets(stateB, nil).Resolve(svc)
	if a1["secret:PIN"] == "" || a1["secret:PIN"] != a2["secret:PIN"] {
		t.Errorf("digests under one state directory differ: %v %v", a1, a2)
	}
	if a1["secret:PIN"] == b["secret:PIN"] {
		t.Error("digests under two state directories are the same: not keyed")
	}
	for _, plain := range []string{"PIN\x001234", "PIN=1234", "1234", "PIN1234"} {
		sum := sha256.Sum256([]byte(plain))
		if strings.HasPrefix(hex.EncodeToString(sum[:]), a1["secret:PIN"][:16]) {
			t.Errorf("the digest is the plain sha256 of %q", plain)
		}
	}
	st, err := os.Stat(filepath.Join(stateA, "secret-key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("secret-key: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if svc.SpecHash(a1) == svc.SpecHash(b) {
		t.Error("the spec hash does not depend on the key")
	}
}

// Molts that make the key at once agree on one; a key file that is not
// a key is moved aside and replaced.
func TestSecretsKeyFile(t *testing.T) {
	state := t.TempDir()
	var wg sync.WaitGroup
	keys := make([]string, 8)
	for i := range keys {
		wg.Go(func() {
			k, err := NewSecrets(state, nil).keyOf()
			if err != nil {
				t.Error(err)
			}
			keys[i] = string(k)
		})
	}
	wg.Wait()
	for _, k := range keys {
		if k != keys[0] || len(k) != 32 {
			t.Fatalf("molts made different keys at once (%d bytes)", len(k))
		}
	}
	path := filepath.Join(state, "secret-key")
	writeFile(t, path, "not a key\n")
	k, err := NewSecrets(state, nil).keyOf()
	if err != nil || len(k) != 32 || string(k) == keys[0] {
		t.Fatalf("keyOf after a broken file = %d bytes, %v", len(k), err)
	}
	aside, _ := filepath.Glob(path + ".unreadable-*")
	if len(aside) != 1 {
		t.Errorf("the broken key was not moved aside: %v", aside)
	}
}

// At provision time, a secret that changed since the plan, or that is
// gone, refuses the provision with a transient error (never an invalid
// spec, which would fail the rollout) that names the secret only.
func TestSecretsValuesCheckThePlan(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	writeFile(t, path, "old-value\n")
	svc := secretService(map[string]schema.Secret{"DB_PASSWORD": {File: path}})
	s := NewSecrets(t.TempDir(), nil)
	resolved, err := s.Resolve(svc)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Values(svc, resolved); err != nil || v["DB_PASSWORD"] != "old-value" {
		t.Fatalf("Values = %v, %v", v, err)
	}
	if why := s.Stale(Desired{Spec: svc, Hash: "0123456789abcdef", Resolved: resolved}); why != "" {
		t.Errorf("Stale = %q before the rotation", why)
	}

	writeFile(t, path, "new-value\n")
	_, err = s.Values(svc, resolved)
	if !errors.Is(err, errSecretsChanged) || errors.Is(err, targets.ErrInvalidSpec) || Classify(err) != Transient {
		t.Errorf("Values after a rotation = %v (class %v), want a transient errSecretsChanged", err, Classify(err))
	}
	if want := "secrets changed since the plan: secret DB_PASSWORD changed (planning again)"; err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if why, want := s.Stale(Desired{Spec: svc, Hash: "0123456789abcdef", Resolved: resolved}), "secret DB_PASSWORD changed since generation 01234567 was made"; why != want {
		t.Errorf("Stale = %q, want %q", why, want)
	}

	os.Remove(path)
	_, err = s.Values(svc, resolved)
	if !errors.Is(err, errSecretsChanged) || Classify(err) != Transient || !strings.Contains(err.Error(), "secret DB_PASSWORD: file "+path) {
		t.Errorf("Values of a removed file = %v (class %v), want a transient errSecretsChanged naming it", err, Classify(err))
	}
}
