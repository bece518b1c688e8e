//go:build linux

package process

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// writeExe writes a copy of the hello app, with extra bytes appended (it
// still runs), to path in place, and returns its digest.
func writeExe(t *testing.T, path, extra string) string {
	t.Helper()
	b, err := os.ReadFile(helloBin)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, extra...)
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return sum(b)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func resolveOf(t *testing.T, tgt *Target, svc *schema.Service) (string, error) {
	t.Helper()
	got, err := tgt.Resolve(t.Context(), svc)
	if err != nil {
		return "", err
	}
	if len(got) != 1 || !validDigest(got[ResolvedSHA256]) {
		t.Fatalf("Resolve = %v, want one key %q with a digest", got, ResolvedSHA256)
	}
	return got[ResolvedSHA256], nil
}

func mustResolve(t *testing.T, tgt *Target, svc *schema.Service) string {
	t.Helper()
	d, err := resolveOf(t, tgt, svc)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return d
}

// exeService runs the executable at path.
func exeService(path string) *schema.Service {
	svc := helloService(nil)
	svc.Process.Command = []string{path}
	return svc
}

// Resolve gives the digest of the file the command names now, relative
// paths and PATH lookups included.
func TestResolve(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	bin := t.TempDir()
	exe := filepath.Join(bin, "app")
	v1 := writeExe(t, exe, "")
	if got := mustResolve(t, tgt, exeService(exe)); got != v1 {
		t.Errorf("Resolve = %s, want %s", got, v1)
	}
	v2 := writeExe(t, exe, "rebuilt")
	if got := mustResolve(t, tgt, exeService(exe)); got != v2 {
		t.Errorf("Resolve after a rebuild = %s, want %s", got, v2)
	}
	t.Chdir(bin)
	if got := mustResolve(t, tgt, exeService("./app")); got != v2 {
		t.Errorf("Resolve(./app) = %s, want %s", got, v2)
	}
	t.Setenv("PATH", bin)
	if got := mustResolve(t, tgt, exeService("app")); got != v2 {
		t.Errorf("Resolve(app in PATH) = %s, want %s", got, v2)
	}
}

func TestResolveInvalid(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	exe := filepath.Join(t.TempDir(), "app")
	digest := writeExe(t, exe, "")
	wrong := strings.Repeat("0", 64)
	pinned := func(pin string) *schema.Service {
		svc := exeService(exe)
		svc.Process.SHA256 = pin
		return svc
	}
	tests := []struct {
		name string
		svc  *schema.Service
		says []string // what the error names
	}{
		{"pin differs", pinned(wrong), []string{exe, digest, wrong}},
		{"malformed pin", pinned("abc"), []string{"abc"}},
		{"missing file", exeService(exe + ".gone"), []string{exe + ".gone"}},
		{"missing file, pinned", func() *schema.Service {
			s := pinned(digest)
			s.Process.Command = []string{exe + ".gone"}
			return s
		}(), []string{exe + ".gone"}},
		{"not in PATH", exeService("molt-no-such-command"), []string{"molt-no-such-command"}},
		{"empty command", command(), nil},
		{"docker service", &schema.Service{Name: "web", Docker: &schema.Docker{Image: "hello"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolveOf(t, tgt, tc.svc)
			if !errors.Is(err, targets.ErrInvalidSpec) {
				t.Fatalf("Resolve = %v, want ErrInvalidSpec", err)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
		})
	}
	if got := mustResolve(t, tgt, pinned(strings.ToUpper(digest))); got != digest {
		t.Errorf("Resolve with the right pin = %s, want %s", got, digest)
	}
}

// A pinned digest that the store holds resolves whatever the file at the
// path has become; an unpinned service follows the file.
func TestResolvePinnedFromStore(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	exe := filepath.Join(t.TempDir(), "app")
	v1 := writeExe(t, exe, "")
	svc := exeService(exe)
	svc.Process.SHA256 = v1
	provision(t, tgt, svc) // stores v1
	v2 := writeExe(t, exe, "rebuilt")

	if got := mustResolve(t, tgt, svc); got != v1 {
		t.Errorf("pinned Resolve = %s, want the stored %s", got, v1)
	}
	if got := mustResolve(t, tgt, exeService(exe)); got != v2 {
		t.Errorf("unpinned Resolve = %s, want the file's %s", got, v2)
	}
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	if got := mustResolve(t, tgt, svc); got != v1 {
		t.Errorf("pinned Resolve without the file = %s, want the stored %s", got, v1)
	}
}

// An unchanged file is not hashed again; a changed one is, and so is one
// changed within the timestamp tick of its last hashing.
func TestResolveCache(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	exe := filepath.Join(t.TempDir(), "app")
	writeExe(t, exe, "")
	svc := exeService(exe)

	tgt.now = func() time.Time { return time.Now().Add(time.Hour) } // every file is old
	mustResolve(t, tgt, svc)
	c, ok := tgt.digests[exe]
	if !ok {
		t.Fatal("the digest of an old file is not cached")
	}
	fake := strings.Repeat("f", 64)
	tgt.digests[exe] = cachedDigest{key: c.key, digest: fake}
	if got := mustResolve(t, tgt, svc); got != fake {
		t.Errorf("Resolve of an unchanged file = %s, want the cached %s", got, fake)
	}
	v2 := writeExe(t, exe, "grown")
	if got := mustResolve(t, tgt, svc); got != v2 {
		t.Errorf("Resolve of a changed file = %s, want %s", got, v2)
	}

	// With the real clock the file was written just now: not cached, so
	// a rewrite of the same size and times is still seen.
	tgt.now = time.Now
	delete(tgt.digests, exe)
	fi, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	mustResolve(t, tgt, svc)
	if _, ok := tgt.digests[exe]; ok {
		t.Fatal("the digest of a file changed just now is cached")
	}
	v3 := writeExe(t, exe, "GROWN")
	if err := os.Chtimes(exe, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got := mustResolve(t, tgt, svc); got != v3 {
		t.Errorf("Resolve of a file rewritten with the same size and times = %s, want %s", got, v3)
	}
}
